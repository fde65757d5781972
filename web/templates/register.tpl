% include('header.tpl')
% if visitor.allowed and visitor.access.why == 'registered':
<p class="notice">Your GitHub account <strong>{{visitor.login}}</strong> is already registered.</p>
<p><a href="/">Back to the start page</a></p>
% else:
<p>Register your GitHub account <strong>{{visitor.login}}</strong> with this site, so that you
can start VMs.</p>
<form method="post" action="/register/{{secret}}">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button type="submit">Register</button>
</form>
% end
% include('footer.tpl')

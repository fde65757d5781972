% include('header.tpl')
<div class="error" role="alert">
<p>{{message}}</p>
</div>
<p><a href="/">Back to the start page</a></p>
% include('footer.tpl')

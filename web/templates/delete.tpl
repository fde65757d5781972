% include('header.tpl')
% if vm and vm['state'] not in ('', 'deleted'):
<p>Delete your VM serving <code>{{vm['repo']}}</code>? Anything not saved elsewhere is lost.</p>
% else:
<p>No VM of yours is known here; deleting makes sure none is left in the cloud.</p>
% end
% if job:
<p class="notice">You have a job queued or running: <a href="/jobs/{{job['id']}}">follow it</a>
and delete when it has finished.</p>
% end
<form method="post" action="/VM_delete">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button class="danger" type="submit">Delete my VM</button>
<a href="/">Cancel</a>
</form>
% include('footer.tpl')

% include('header.tpl')
<p>Start a VM serving this repository?</p>
<dl>
<dt>Repository</dt><dd><code>{{repo}}</code></dd>
<dt>Ref</dt><dd>{{ref or "the default branch"}}</dd>
</dl>
% if job:
<p class="notice">You have a job queued or running: <a href="/jobs/{{job['id']}}">follow it</a>
and start this one when it has finished.</p>
% elif serves_another:
<p class="notice">Your VM serves <code>{{vm['repo']}}</code>: delete it first to serve another
repository.</p>
% end
<form method="post" action="{{action}}">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<input type="hidden" name="giturl" value="{{repo}}">
<input type="hidden" name="ref" value="{{ref}}">
<button type="submit">Start the VM</button>
<a href="/">Cancel</a>
</form>
% include('footer.tpl')

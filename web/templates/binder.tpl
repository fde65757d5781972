% include('header.tpl')
<p>This Binder link asks for a Jupyter server for this repository:</p>
<dl>
<dt>Repository</dt><dd><code>{{wanted.repo}}</code></dd>
<dt>Ref</dt><dd>{{wanted.ref or "the default branch"}}</dd>
<dt>Opens</dt><dd><code>{{wanted.path}}</code></dd>
</dl>
% if job:
<p class="notice">You have a job queued or running: <a href="/jobs/{{job['id']}}">follow it</a>
and open this link again when it has finished.</p>
% elif other:
<div class="notice" role="status">
<p>Your VM serves <code>{{other['repo']}}</code>{{(" at " + other['ref']) if other['ref'] else ""}}.
One VM serves one repository: to open this link, replace it. Delete your VM (anything not saved
elsewhere is lost), then open this link again.</p>
<form method="post" action="/VM_delete">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button class="danger" type="submit">Delete my VM to replace it</button>
</form>
<p>This link, to open again: <a href="{{link}}">{{link}}</a></p>
</div>
% else:
<form method="post" action="{{action}}">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button type="submit">Launch</button>
<a href="/">Cancel</a>
</form>
% end
% include('footer.tpl')

% include('header.tpl')
% if not visitor.signed_in:
<p>Get your own Jupyter server for a git repository: sign in with GitHub, name a repository,
and a VM in the cloud builds its environment with repo2docker and serves it to you.</p>
<p><a class="button" href="/auth/login">Sign in with GitHub</a></p>
% elif not visitor.allowed:
<div class="error" role="alert">
<p>{{why_not}}</p>
</div>
% else:
<section aria-labelledby="vm-heading">
<h2 id="vm-heading">Your VM</h2>
% if vm and vm['state'] not in ('', 'deleted'):
<dl>
<dt>Repository</dt><dd><code>{{vm['repo']}}</code></dd>
% if vm['ref']:
<dt>Ref</dt><dd><code>{{vm['ref']}}</code></dd>
% end
<dt>State</dt><dd>{{vm['state']}}</dd>
% if lifetime['expires']:
<dt>Deleted at the latest</dt><dd>{{lifetime['expires']}} ({{lifetime['expires_in']}}), in use or not</dd>
% end
<dt>Deleted if unused</dt>
% if lifetime['idle_deadline']:
<dd>at {{lifetime['idle_deadline']}} ({{lifetime['idle_in']}}), unless you use it before
(last used {{lifetime['last_activity'] or 'at an unknown time'}}). A running kernel or an open
terminal counts as use.</dd>
% else:
<dd>after some hours without use; the site's next check says when.</dd>
% end
</dl>
% include('keep.tpl')
% if jupyter_url:
<p><a class="button" href="{{jupyter_url}}" rel="noreferrer noopener">Open Jupyter</a></p>
% elif not job and vm['state'] != 'ready':
<p class="notice">The last job on this VM did not finish. Start the same repository again
to reconnect to it (it is not built again), or delete it.</p>
% end
% if not job:
<form method="post" action="/VM_delete">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button class="danger" type="submit">Delete this VM</button>
</form>
% end
% else:
<p>You have no VM at the moment.</p>
% if lifetime['gone']:
<p class="notice" role="status">{{lifetime['gone']}}</p>
% end
% end
</section>
% if job:
<section aria-labelledby="job-heading">
<h2 id="job-heading">Current job</h2>
% doing = {'start': 'Starting', 'extend': 'Keeping', 'delete': 'Deleting'}.get(job['action'], 'Working on')
<p class="notice">{{doing}} your VM: {{job['state']}},
phase <strong>{{job['phase']}}</strong>.
<a href="/jobs/{{job['id']}}">Follow its progress</a>.</p>
</section>
% end
<section aria-labelledby="start-heading">
<h2 id="start-heading">Start a VM</h2>
% if job:
<p>You can start a VM once the current job has finished.</p>
% else:
% if vm and vm['state'] not in ('', 'deleted'):
<p>Your VM serves <code>{{vm['repo']}}</code>: to serve another repository, delete it first.</p>
% end
<form method="post" action="/VM_start">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<label for="giturl">Repository URL</label>
<input id="giturl" name="giturl" type="url" value="{{default_repo}}" required
       aria-describedby="giturl-help">
<p id="giturl-help">An https:// URL of a git repository, such as https://github.com/owner/name.</p>
<label for="ref">Branch, tag or commit (optional)</label>
<input id="ref" name="ref" type="text" value="" aria-describedby="ref-help">
<p id="ref-help">Leave empty for the repository's default branch.</p>
<button type="submit">Start</button>
</form>
% end
% include('binder_form.tpl', default_repo=default_repo)
</section>
% if jobs:
<section aria-labelledby="jobs-heading">
<h2 id="jobs-heading">Your recent jobs</h2>
<table>
<thead><tr><th scope="col">When</th><th scope="col">Action</th><th scope="col">Repository</th>
<th scope="col">Result</th></tr></thead>
<tbody>
% for item in jobs:
<tr><td>{{item['created'][:19].replace('T', ' ')}} UTC</td><td>{{item['action']}}</td>
<td><code>{{item['repo']}}</code></td>
<td><a href="/jobs/{{item['id']}}">{{item['message'] if item['action'] == 'cull' else item['state']}}</a></td></tr>
% end
</tbody>
</table>
</section>
% end
% end
% include('footer.tpl')

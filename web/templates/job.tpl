% refresh = 0 if job['done'] else 3
% live = job['action'] == 'start' and not job['done']
% include('header.tpl', refresh=refresh, live=live)
<dl>
% titles = {'start': 'Start a VM', 'delete': 'Delete your VM', 'extend': 'Keep your VM longer', 'cull': "The site's cleanup deleted your VM"}
<dt>Action</dt><dd>{{titles.get(job['action'], job['action'])}}</dd>
% if job['repo']:
<dt>Repository</dt><dd><code>{{job['repo']}}</code></dd>
% end
% if job['action'] == 'start':
<dt>Ref</dt><dd>{{job['ref'] or 'the default branch'}}</dd>
% end
<dt>State</dt><dd>{{job['state']}}</dd>
<dt>Queued</dt><dd>{{job['created'][:19].replace('T', ' ')}} UTC</dd>
% if job['finished']:
<dt>Finished</dt><dd>{{job['finished'][:19].replace('T', ' ')}} UTC</dd>
% end
</dl>
<h2>Progress</h2>
<ol class="phases">
% reached = job['phase'] in job['phases']
% position = job['phases'].index(job['phase']) if reached else -1
% for number, phase in enumerate(job['phases']):
%   if phase == job['phase']:
<li aria-current="step">{{phase}}</li>
%   elif number < position or (job['state'] == 'succeeded' and not reached):
<li class="done">{{phase}}</li>
%   else:
<li>{{phase}}</li>
%   end
% end
% if job['phase'] == 'failed' or job['state'] in ('failed', 'interrupted'):
<li class="failed" aria-current="step">{{job['state']}}</li>
% end
</ol>
% if job['state'] in ('failed', 'interrupted'):
<div class="error" role="alert">
<p>{{job['message'] or 'The job did not finish.'}}</p>
</div>
% elif job['message']:
<p class="notice" role="status">{{job['message']}}</p>
% end
% if job['jupyter_url']:
<p><a class="button" href="{{job['jupyter_url']}}" rel="noreferrer noopener">Open Jupyter</a></p>
% end
% if not job['done']:
<p id="refreshes">This page refreshes itself every few seconds.</p>
% end
% if job['action'] == 'start' and (job['log'] or live):
<h2>Build log</h2>
%   last = job['log'][-1]['seq'] if job['log'] else ''
%   events = '/jobs/' + job['id'] + '/events' + ('?after=' + str(last) if job['log'] else '')
%   if live:
<pre id="build-log" class="log" aria-live="polite" data-events="{{events}}">{{'\n'.join(line['text'] for line in job['log'])}}</pre>
%   else:
<pre id="build-log" class="log">{{'\n'.join(line['text'] for line in job['log'])}}</pre>
%   end
%   if live:
<script src="/static/joblog.js" defer></script>
%   end
% end
% if job['output']:
<details>
<summary>Technical details: the output of the playbook</summary>
<pre>{{job['output']}}</pre>
</details>
% end
<p><a href="/">Back to the start page</a></p>
% include('footer.tpl')

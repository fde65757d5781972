% # "Keep it" (web/lifetime.py): the VM's expiry moves within the site's cap.
% if lifetime['cap']:
<p class="notice">{{lifetime['cap']}}</p>
% elif lifetime['can_extend'] and not job:
% if lifetime['refused']:
<p class="notice" role="status">{{lifetime['refused']}}</p>
% end
<form method="post" action="/VM_extend">
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button type="submit">Keep it longer</button>
</form>
% end

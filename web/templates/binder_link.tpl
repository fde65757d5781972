% include('header.tpl')
<p>The launch link and badge of <code>{{repo}}</code>{{(" at " + ref) if ref else ""}}, ready to
copy into a README, a course page or Jupyter Book.</p>
<label for="binder-link">Launch link</label>
<input id="binder-link" type="text" readonly value="{{link}}">
<label for="binder-badge">Markdown badge</label>
<input id="binder-badge" type="text" readonly value="{{badge}}">
<p>The badge is <code>/badge_logo.svg</code> of this site (<code>/badge.svg</code> without the logo).</p>
<p><a href="/">Back to the start page</a></p>
% include('footer.tpl')

% # The launch link and Markdown badge of a repository (web/binder.py, /binder/link).
<details>
<summary>Binder link and badge of a repository</summary>
<form method="get" action="/binder/link">
<label for="binder-giturl">Repository of the link (its URL)</label>
<input id="binder-giturl" name="giturl" type="url" value="{{default_repo}}" required>
<label for="binder-ref">Branch, tag or commit of the link (optional)</label>
<input id="binder-ref" name="ref" type="text" value="">
<label for="binder-urlpath">Open at (optional, such as lab/tree/intro.ipynb)</label>
<input id="binder-urlpath" name="urlpath" type="text" value="">
<button class="secondary" type="submit">Show the link and badge</button>
</form>
</details>

<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
% if get('refresh') and get('live'):
<noscript><meta http-equiv="refresh" content="{{refresh}}"></noscript>
% elif get('refresh'):
<meta http-equiv="refresh" content="{{refresh}}">
% end
<title>{{title}} · ssc-repo2docker</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 46em; margin: 0 auto; padding: 0 1em 3em;
       line-height: 1.5; color: #1b1b1b; background: #fff }
header { display: flex; flex-wrap: wrap; justify-content: space-between; align-items: center;
         gap: .5em; padding: .8em 0; border-bottom: 1px solid #ccc; margin-bottom: 1em }
header .site { font-weight: bold; color: inherit; text-decoration: none }
a { color: #0645ad } a:focus, button:focus, input:focus { outline: 3px solid #ffbf47 }
form.inline { display: inline-flex; gap: .5em; align-items: center; margin: 0 }
label { display: block; margin-top: .8em; font-weight: 600 }
input[type=text], input[type=url] { width: 100%; box-sizing: border-box; padding: .4em;
       font: inherit; border: 1px solid #767676; border-radius: 3px }
button, .button { display: inline-block; margin-top: .8em; padding: .45em 1em; font: inherit;
       border: 1px solid #0b5394; border-radius: 3px; background: #0b5394; color: #fff;
       text-decoration: none; cursor: pointer }
button.secondary { background: #fff; color: #0b5394 }
button.danger { background: #a4262c; border-color: #a4262c }
.error { border-left: 5px solid #a4262c; background: #fdf2f2; padding: .6em 1em }
.notice { border-left: 5px solid #0b5394; background: #f1f6fb; padding: .6em 1em }
code, pre { font-family: ui-monospace, monospace; word-break: break-all }
pre { white-space: pre-wrap; background: #f6f6f6; padding: .8em; max-height: 30em; overflow: auto }
ol.phases { list-style: none; padding: 0; display: flex; flex-wrap: wrap; gap: .4em }
ol.phases li { padding: .2em .6em; border: 1px solid #bbb; border-radius: 1em; color: #555 }
ol.phases li.done { background: #e8f3e8; border-color: #4a8a4a; color: #1b4d1b }
ol.phases li[aria-current] { background: #0b5394; border-color: #0b5394; color: #fff }
ol.phases li.failed { background: #a4262c; border-color: #a4262c; color: #fff }
table { border-collapse: collapse; width: 100% } th, td { text-align: left; padding: .3em .5em;
       border-bottom: 1px solid #ddd; vertical-align: top }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2em 1em } dt { font-weight: 600 }
</style>
</head>
<body>
<header>
<a class="site" href="/">ssc-repo2docker</a>
% if visitor.signed_in:
<form class="inline" method="post" action="/auth/logout">
<span>Signed in as <strong>{{visitor.login}}</strong></span>
<input type="hidden" name="csrf" value="{{visitor.csrf}}">
<button class="secondary" type="submit">Sign out</button>
</form>
% end
</header>
<main>
<h1>{{title}}</h1>

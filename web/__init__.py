"""The thin web trigger of ssc-repo2docker: GitHub sign-in, one VM per user, jobs in SQLite."""

"""The product on the local cloud: the collection's playbooks and modules run against it
(tests of the local cloud itself are in tests/localcloud/)."""

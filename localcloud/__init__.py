"""A local OpenStack-compatible cloud whose servers are Docker containers.

A development and test tool for ssc-repo2docker: the product never depends on it.
"""

"""Jingmin workload generator (`jingmin simulate`)."""

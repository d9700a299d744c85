"""Tests of the local Databricks workspace emulator, driven through the real databricks-sdk."""

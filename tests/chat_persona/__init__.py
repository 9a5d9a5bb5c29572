"""Tests of the chat_persona task (a package so helper imports and file names stay unique)."""

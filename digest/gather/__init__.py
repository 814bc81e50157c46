"""Gathering articles: fetch over HTTP, parse feeds, clean HTML."""

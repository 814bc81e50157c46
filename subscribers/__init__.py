"""Lists, subscribers, memberships, suppression and tokens."""

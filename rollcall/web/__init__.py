"""What ``rollcall serve`` shows on the web: the admin API and the meeting pages."""

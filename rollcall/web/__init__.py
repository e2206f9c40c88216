"""What ``rollcall serve`` shows on the web: the admin API and its meeting pages
(``admin_api``), and the web app for admins and instructors (``app`` mounts it:
``auth`` sign-in and roles, ``courses``, ``meetings``, ``ops`` pages, ``api`` JSON)."""

"""Reports for instructors: a meeting's results read back from the database and written
as CSV, XLSX, PNG, HTML and a terminal table; the course (term) view."""

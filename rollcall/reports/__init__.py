"""Reports for instructors: a meeting's results read back from the database (``results``) and
written by format (``csv_report``, ``xlsx``, ``png``, ``html``, ``terminal``; ``meeting`` writes
them all), and the course (term) view (``course``, ``course_writers``, ``course_png``)."""

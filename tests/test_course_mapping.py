from __future__ import annotations

import json

from rollcall.bot.course_mapping import course_for
from rollcall.config import load_config


def test_rules_from_config_file_and_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text(
        '[[zoom.course_map]]\ncourse = "CS101"\nmeeting_ids = ["857 4606 5432"]\n'
        '[[zoom.course_map]]\ncourse = "BIO2"\ntopics = ["Biology*"]\nhost_emails = ["Prof@School.edu"]\n'
    )
    rules = load_config(path, {}).zoom.course_map
    assert course_for(rules, meeting_id=85746065432, topic="x", host_email="") == "CS101"
    assert course_for(rules, meeting_id=1, topic="biology 2 - week 3", host_email="") == "BIO2"
    assert course_for(rules, meeting_id=1, topic="Other", host_email="prof@school.edu") == "BIO2"
    assert course_for(rules, meeting_id=1, topic="Other", host_email="x@y") is None
    env = {"ROLLCALL_ZOOM_COURSE_MAP": json.dumps([{"course": "ART", "topics": ["Art*"]}])}
    rules = load_config(None, env).zoom.course_map
    assert course_for(rules, meeting_id=None, topic="Art history", host_email="") == "ART"

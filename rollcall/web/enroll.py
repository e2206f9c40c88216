"""Enrolling photos from the web app: one thread owns the face models.

The models load on the first upload (not at start-up) in the enrolment
thread, and every enrolment runs there with a connection of that thread, so
neither the models' sessions nor a SQLite connection cross threads and the
event loop never waits for them. The checks and their verdicts are
``rollcall.enrollment.enroll.enroll_photos``'s, the same as the CLI's.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rollcall.config import Config
from rollcall.enrollment.enroll import EnrollmentResult
from rollcall.web.db import with_db


class Enroller:
    def __init__(self, config: Config):
        self._config = config
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollcall-enroll")
        self._models: Any = None
        self._pm: Any = None

    def _load(self) -> None:
        if self._pm is None:
            from rollcall.pipeline.plugin_manager import make_plugin_manager, resolve_face_models

            self._models = resolve_face_models(self._config, progress=False)
            self._pm = make_plugin_manager(self._config, self._models)

    def _enroll(self, course_id: str, student_id: str, photos: list[Path]) -> EnrollmentResult:
        from rollcall.enrollment.enroll import enroll_photos

        self._load()
        return with_db(
            self._config.home,
            enroll_photos,
            self._pm,
            self._models.model_key,
            course_id,
            student_id,
            photos,
            self._config.enrollment,
        )

    async def enroll(self, course_id: str, student_id: str, photos: list[Path]) -> EnrollmentResult:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, self._enroll, course_id, student_id, photos
        )

    def close(self) -> None:
        self._executor.shutdown(wait=False)

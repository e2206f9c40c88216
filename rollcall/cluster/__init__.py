"""Worker machines for ``rollcall serve`` through Dramatiq and a Redis broker.

``rollcall serve`` stays the coordinator and the system of record: it claims a job
from its SQLite queue as always, then sends the analysis to the broker
(:mod:`~rollcall.cluster.coordinator`) instead of running it; a ``rollcall worker``
on any machine (:mod:`~rollcall.cluster.remote`) downloads the recording, analyses
its frames and sends the results back; the coordinator stores them in one
transaction, only while it still holds the job. :mod:`~rollcall.cluster.messages`
holds what travels (signed), :mod:`~rollcall.cluster.broker` the broker's set-up.
"""

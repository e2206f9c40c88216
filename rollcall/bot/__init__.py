"""Zoom: OAuth, the API client, the signed webhook, the WebSocket event subscription, the
poller, the downloader, and the intake that turns every Zoom event into one job."""

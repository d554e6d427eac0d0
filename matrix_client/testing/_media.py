"""The media repository of the fake homeserver."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from ._model import (
    JsonDict,
    _HttpError,
)


class MediaHandlers:
    """Upload, download and config endpoints (a mixin of FakeHomeserver)."""

    # -- handlers: media ------------------------------------------------------------------------

    async def _h_upload(
        self, *, query: dict[str, str], request: httpx.Request, **_: Any
    ) -> JsonDict:
        data = request.content
        declared = request.headers.get("content-length")
        if declared is None:  # Synapse reads the body by its Content-Length
            raise _HttpError(400, "M_MISSING_PARAM", "Request must specify a Content-Length")
        if declared != str(len(data)):
            raise _HttpError(400, "M_UNKNOWN", "Content-Length does not match the body")
        if len(data) > self.upload_size:
            raise _HttpError(413, "M_TOO_LARGE", "Cannot upload files larger than the limit")
        media_id = f"media{next(self._ids)}"
        content_type = request.headers.get("content-type", "application/octet-stream")
        self._media[media_id] = (data, content_type, query.get("filename"))
        return {"content_uri": f"mxc://{self.server_name}/{media_id}"}

    def _media_response(self, server: str, media_id: str) -> httpx.Response:
        if server != self.server_name or media_id not in self._media:
            raise _HttpError(404, "M_NOT_FOUND", "Not found")
        data, content_type, filename = self._media[media_id]
        headers = {"content-type": content_type}
        if filename:
            headers["content-disposition"] = (
                f"attachment; filename*=utf-8''{quote(filename, safe='')}"
            )
        return httpx.Response(200, content=data, headers=headers)

    async def _h_download_v1(self, *, server: str, mediaId: str, **_: Any) -> httpx.Response:
        if "v1.11" not in self.versions:
            raise _HttpError(404, "M_UNRECOGNIZED", "Unrecognized request")
        return self._media_response(server, mediaId)

    async def _h_download_legacy(self, *, server: str, mediaId: str, **_: Any) -> httpx.Response:
        if not self.legacy_media:
            raise _HttpError(404, "M_NOT_FOUND", "Not found")
        return self._media_response(server, mediaId)

    async def _h_config_v1(self, **_: Any) -> JsonDict:
        if "v1.11" not in self.versions:
            raise _HttpError(404, "M_UNRECOGNIZED", "Unrecognized request")
        return {"m.upload.size": self.upload_size}

    async def _h_config_legacy(self, **_: Any) -> JsonDict:
        return {"m.upload.size": self.upload_size}

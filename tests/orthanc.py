"""A real Orthanc PACS (Debian's `orthanc` and `orthanc-dicomweb`) for the tests.

Started on free ports with a generated configuration; skipped with the reason when
the packages are not installed (`.ci/run` installs them on CI).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from pydicom import dcmread
from pydicom.dataset import Dataset

from webapp.local_redis import free_port

DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "ORTHANC"

# Orthanc forwards each MR series to the site once it has been stable for StableAge
# seconds: the auto-routing docs/pacs.md recommends, verbatim.
FORWARD_MR_SERIES = """
function OnStableSeries(seriesId, tags, metadata)
  if tags['Modality'] == 'MR' then
    RestApiPost('/dicom-web/servers/site/stow', '{"Resources": ["' .. seriesId .. '"]}')
  end
end
"""


def missing_reason() -> str | None:
    """Why Orthanc cannot run here, or None when it can."""
    if shutil.which("Orthanc") is None:
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb dcmtk)"
    if not DICOMWEB_PLUGIN.exists():
        return "Orthanc's DICOMweb plugin is not installed (apt-get install orthanc-dicomweb)"
    return None


@dataclass
class Orthanc:
    process: subprocess.Popen[bytes]
    http_port: int
    dicom_port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.url}/dicom-web"

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.url}{path}", timeout=10)
        response.raise_for_status()
        return response.json() if "json" in response.headers.get("Content-Type", "") else response

    def find_instances(self, study_uid: str) -> list[dict[str, Any]]:
        """Return Orthanc's view (tags expanded) of every instance of the study it holds."""
        query = {"Level": "Instance", "Query": {"StudyInstanceUID": study_uid}, "Expand": True}
        response = requests.post(f"{self.url}/tools/find", json=query, timeout=10)
        response.raise_for_status()
        return list(response.json())

    def file(self, instance_id: str) -> bytes:
        response = requests.get(f"{self.url}/instances/{instance_id}/file", timeout=10)
        response.raise_for_status()
        return response.content

    def dataset(self, instance: dict[str, Any]) -> Dataset:
        """Return an instance Orthanc holds (as `find_instances` lists it), read by pydicom."""
        return dcmread(io.BytesIO(self.file(instance["ID"])))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_orthanc(folder: Path, site_dicomweb_url: str, username: str, password: str) -> Orthanc:
    """Start Orthanc, forwarding MR series to the site's STOW-RS; wait until it serves."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    (folder / "forward.lua").write_text(FORWARD_MR_SERIES)
    config = {
        "Name": "test-pacs",
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AE_TITLE,
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "StableAge": 1,
        "LuaScripts": [str(folder / "forward.lua")],
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {
            "Enable": True,
            "Root": "/dicom-web/",
            "Servers": {
                "site": {
                    "Url": site_dicomweb_url,
                    "Username": username,
                    "Password": password,
                    # Django reads no request body without a Content-Length.
                    "ChunkedTransfers": False,
                }
            },
        },
    }
    config_path = folder / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = folder / "orthanc.log"
    with open(log_path, "wb") as log_file:
        process = subprocess.Popen(
            ["Orthanc", "--verbose", str(config_path)], stdout=log_file, stderr=subprocess.STDOUT
        )
    orthanc = Orthanc(process, http_port, dicom_port, log_path)
    _wait_until_serving(orthanc)
    return orthanc


def _wait_until_serving(orthanc: Orthanc, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if orthanc.process.poll() is not None:
            break
        try:
            requests.get(f"{orthanc.dicomweb_url}/studies", timeout=2).raise_for_status()
            return
        except requests.RequestException:
            time.sleep(0.3)
    orthanc.stop()
    raise RuntimeError(f"Orthanc did not start:\n{orthanc.log()[-3000:]}")


def store_scu(orthanc: Orthanc, files: list[Path]) -> None:
    """Send files to Orthanc by C-STORE, as a scanner does: dcmtk's storescu, or pynetdicom."""
    if shutil.which("storescu"):
        command = ["storescu", "-aec", AE_TITLE, "127.0.0.1", str(orthanc.dicom_port)]
        subprocess.run([*command, *map(str, files)], check=True, capture_output=True)
        return
    from pydicom import dcmread
    from pynetdicom import AE, StoragePresentationContexts

    entity = AE()
    entity.requested_contexts = StoragePresentationContexts
    association = entity.associate("127.0.0.1", orthanc.dicom_port, ae_title=AE_TITLE)
    try:
        for path in files:
            status = association.send_c_store(dcmread(path))
            assert status.Status == 0x0000, status
    finally:
        association.release()

"""Source bundles: hostile archives are refused with a clear InputError and leave nothing."""
import gzip
import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
from django.conf import settings

from catalog.models import Algorithm, SourceBundle
from marketplace.errors import InputError, PayloadTooLargeError
from tests.catalog.conftest import demo_files, tar_gz, upload, zip_bytes

pytestmark = pytest.mark.django_db


def sources_root() -> Path:
    return Path(settings.STORAGES["sources"]["OPTIONS"]["location"])


def stored_files() -> list[Path]:
    root = sources_root()
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


@pytest.fixture(autouse=True)
def _empty_sources():
    before = set(stored_files())
    yield before


def assert_refused(algorithm, user, data: bytes, message: str, content_type="application/gzip"):
    before = set(stored_files())
    with pytest.raises(InputError, match=message):
        upload(algorithm, user, data, content_type)
    assert set(stored_files()) == before
    assert not SourceBundle.objects.filter(algorithm=algorithm).exists()
    algorithm.refresh_from_db()
    assert algorithm.current_source is None


def tar_with(member: tarfile.TarInfo, data: bytes = b"") -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        archive.addfile(member, io.BytesIO(data) if data else None)
        good = tarfile.TarInfo("src/hello.py")
        good.size = 1
        archive.addfile(good, io.BytesIO(b"#"))
    return buffer.getvalue()


def test_zip_slip_is_refused(algorithm, user):
    data = zip_bytes({"src/hello.py": "#", "../../etc/passwd": "root::0:0"})
    assert_refused(algorithm, user, data, "may not climb out", "application/zip")


def test_tar_slip_is_refused(algorithm, user):
    data = tar_gz({"src/hello.py": "#", "src/../../../tmp/evil": "x"})
    assert_refused(algorithm, user, data, "may not climb out")


def test_absolute_paths_are_refused(algorithm, user):
    assert_refused(algorithm, user, tar_gz({"src/hello.py": "#", "/etc/cron.d/x": "x"}),
                   "absolute paths")


def test_symlink_to_etc_passwd_is_refused_in_tar(algorithm, user):
    link = tarfile.TarInfo("src/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    assert_refused(algorithm, user, tar_with(link), "may not contain a link")


def test_hard_link_is_refused(algorithm, user):
    link = tarfile.TarInfo("src/passwd")
    link.type, link.linkname = tarfile.LNKTYPE, "/etc/passwd"
    assert_refused(algorithm, user, tar_with(link), "may not contain a link")


def test_symlink_is_refused_in_zip(algorithm, user):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("src/hello.py", "#")
        info = zipfile.ZipInfo("src/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        archive.writestr(info, "/etc/passwd")
    assert_refused(algorithm, user, buffer.getvalue(), "may not contain a link", "application/zip")


def test_device_files_are_refused(algorithm, user):
    device = tarfile.TarInfo("src/null")
    device.type, device.devmajor, device.devminor = tarfile.CHRTYPE, 1, 3
    assert_refused(algorithm, user, tar_with(device), "device or special file")


def test_ten_thousand_files_are_refused(algorithm, user):
    files = {f"src/f{i}.txt": "" for i in range(10_000)}
    files["src/hello.py"] = "#"
    assert_refused(algorithm, user, tar_gz(files), "more than 5000 entries")


def test_two_gigabytes_claimed_are_refused_without_reading_them(algorithm, user):
    huge = tarfile.TarInfo("src/weights.bin")
    huge.size = 2 * 1024 ** 3
    raw = io.BytesIO()
    raw.write(huge.tobuf())  # the header claims 2 GB; the data is simply not there
    raw.write(b"\0" * 1024)
    data = gzip.compress(raw.getvalue())
    assert_refused(algorithm, user, data, "unpacks to more than")


def test_two_gigabytes_claimed_in_a_zip_are_refused(algorithm, user):
    data = bytearray(zip_bytes({"src/hello.py": "#", "src/weights.bin": "x"}))
    # Patch the central directory: file_size of the second entry becomes 2 GB.
    central = data.rfind(b"PK\x01\x02")
    data[central + 24:central + 28] = (2 * 1024 ** 3).to_bytes(4, "little")
    assert_refused(algorithm, user, bytes(data), "unpacks to more than", "application/zip")


def test_a_bundle_without_the_entry_point_is_refused(algorithm, user):
    assert_refused(algorithm, user, tar_gz({"src/other.py": "#", "requirements.txt": ""}),
                   "has no src/hello.py")


def test_garbage_is_refused(algorithm, user):
    assert_refused(algorithm, user, b"definitely not an archive", "must be a .tar.gz or a .zip")


def test_an_oversized_upload_is_413_and_stores_nothing(algorithm, user, settings):
    settings.BUNDLE_MAX_BYTES = 100
    with pytest.raises(PayloadTooLargeError):
        upload(algorithm, user, tar_gz(demo_files()))
    assert not SourceBundle.objects.exists()


def test_the_adk_layout_is_accepted_and_the_readme_becomes_the_docs(algorithm, user):
    bundle = upload(algorithm, user, tar_gz(demo_files()))
    algorithm.refresh_from_db()
    assert algorithm.current_source == bundle
    assert bundle.file_count == 3 and bundle.archive_format == "tar.gz"
    assert algorithm.summary.startswith("# Hello") and algorithm.summary_from_bundle
    assert (sources_root() / bundle.storage_path).is_file()


def test_docs_written_by_the_author_win_over_the_readme(user):
    from catalog import services

    algorithm = services.algorithm_create(actor=user, owner=user.username, name="hello",
                                          summary="My own docs")
    upload(algorithm, user, tar_gz(demo_files()))
    algorithm.refresh_from_db()
    assert algorithm.summary == "My own docs"


def test_a_wrapping_folder_is_unwrapped_and_the_hash_ignores_the_archive_format(algorithm, user):
    files = demo_files()
    wrapped = upload(algorithm, user, tar_gz({f"hello-main/{k}": v for k, v in files.items()}))
    as_zip = upload(algorithm, user, zip_bytes(files), "application/zip")
    assert wrapped.content_hash == as_zip.content_hash
    assert wrapped.archive_sha256 != as_zip.archive_sha256


def test_upload_api_checks_content_type_and_reports_errors(api, user, algorithm):
    response = api.put(f"/v1/algorithms/{user.username}/hello/source", data=b"{}",
                       content_type="application/json")
    assert response.status_code == 415
    assert response.json()["error"]["error_type"] == "InputError"
    bad = api.put(f"/v1/algorithms/{user.username}/hello/source",
                  data=zip_bytes({"../x": "x", "src/hello.py": "#"}), content_type="application/zip")
    assert bad.status_code == 400
    assert "climb out" in bad.json()["error"]["message"]
    good = api.put(f"/v1/algorithms/{user.username}/hello/source", data=tar_gz(demo_files()),
                   content_type="application/gzip")
    assert good.status_code == 201 and good.json()["files"] == 3
    assert Algorithm.objects.get(pk=algorithm.pk).current_source is not None

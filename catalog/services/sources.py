"""Receiving source bundles: validate everything first, store only what passed."""
from typing import BinaryIO, Iterator

from django.conf import settings
from django.core.files import File
from django.core.files.storage import storages
from django.db import transaction

from catalog import bundles
from catalog.models import Algorithm, SourceBundle
from marketplace.models import User
from marketplace.services import audit_record


def sources_storage():
    return storages["sources"]


def source_bundle_upload(*, algorithm: Algorithm, actor: User, chunks: Iterator[bytes],
                         filename: str = "", content_type: str = "") -> SourceBundle:
    """Validate an uploaded archive and make it the algorithm's current source.

    Nothing reaches storage or the database unless the whole archive passes; a refused
    bundle raises InputError (413 when it is too large) and leaves nothing behind.
    """
    spool, archive_sha256, size = bundles.open_spooled(chunks, settings.BUNDLE_MAX_BYTES)
    with spool:
        archive_format = bundles.detect_format(spool.read(4), filename, content_type)
        spool.seek(0)
        info = bundles.inspect(spool, archive_format, language=algorithm.language,
                               algorithm_name=algorithm.name)
        content_hash = bundles.content_hash(spool, info, language=algorithm.language)
        readme = bundles.read_text_member(spool, info, "README.md")
        return _store(algorithm=algorithm, actor=actor, spool=spool, info=info, size=size,
                      archive_sha256=archive_sha256, content_hash=content_hash, readme=readme)


def _store(*, spool: BinaryIO, info: bundles.BundleInfo, archive_sha256: str, **fields):
    storage = sources_storage()
    path = storage.save(f"bundles/{fields['algorithm'].uuid}/{archive_sha256}.{info.archive_format}",
                        File(spool))
    try:
        return _record(path=path, info=info, archive_sha256=archive_sha256, **fields)
    except BaseException:
        storage.delete(path)  # the row was not written: the file must not stay either
        raise


@transaction.atomic
def _record(*, algorithm: Algorithm, actor: User, path: str, info: bundles.BundleInfo, size: int,
            archive_sha256: str, content_hash: str, readme: str) -> SourceBundle:
    bundle = SourceBundle.objects.create(
        algorithm=algorithm, storage_path=path, archive_format=info.archive_format,
        archive_sha256=archive_sha256, content_hash=content_hash, size_bytes=size,
        unpacked_bytes=info.unpacked_bytes, file_count=len(info.files), uploaded_by=actor)
    algorithm.current_source = bundle
    fields = ["current_source", "updated_at"]
    if readme and (not algorithm.summary or algorithm.summary_from_bundle):
        algorithm.summary, algorithm.summary_from_bundle = readme, True
        fields += ["summary", "summary_from_bundle"]
    algorithm.save(update_fields=fields)
    audit_record(action="algorithm.source_upload", actor=actor, target=algorithm,
                 organization=algorithm.owner_org,
                 data={"content_hash": content_hash, "bytes": size, "files": len(info.files)})
    return bundle

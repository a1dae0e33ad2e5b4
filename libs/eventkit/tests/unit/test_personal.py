"""Crypto-shredding with the in-memory vault: round trips, stable references, erasure."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import re
import stat
import threading
from pathlib import Path

import pytest
from eventkit.personal import (
    ERASED,
    PersonalDataError,
    SubjectErased,
    Vault,
    is_personal_blob,
    master_key,
    read_or_create_secret_file,
    subject_ref,
)
from eventkit.settings import KernelSettings

REF = re.compile(r"sub_[a-z2-7]{26}")


def key_b64() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def settings(tmp_path: Path) -> KernelSettings:
    return KernelSettings(jingmin_home=tmp_path, master_key=key_b64())


@pytest.fixture
def vault(settings: KernelSettings) -> Vault:
    return Vault(None, settings)


# --- keys and references ------------------------------------------------------------------


def test_dev_master_key_is_created_once_and_private(tmp_path: Path) -> None:
    settings = KernelSettings(jingmin_home=tmp_path / "home")
    key = master_key(settings)
    assert len(key) == 32
    path = tmp_path / "home" / "master.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert base64.b64decode(path.read_text()) == key
    assert master_key(KernelSettings(jingmin_home=tmp_path / "home")) == key


def test_a_malformed_master_key_is_refused(tmp_path: Path) -> None:
    for bad in ("not base64!", base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError, match="32 bytes"):
            master_key(KernelSettings(jingmin_home=tmp_path, master_key=bad))


def test_racing_creators_of_a_secret_file_all_get_the_winners_bytes(tmp_path: Path) -> None:
    path = tmp_path / "secret"
    results: list[bytes] = []
    barrier = threading.Barrier(16)

    def create(i: int) -> None:
        barrier.wait()
        results.append(read_or_create_secret_file(path, lambda: f"key-{i}".encode() * 100))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0] == path.read_bytes()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secret"]  # no temp files left


def test_subject_ref_is_stable_and_normalised(settings: KernelSettings) -> None:
    ref = subject_ref({"id_number": "33010219900101123x"}, settings)
    assert REF.fullmatch(ref)
    assert subject_ref({"id_number": "33010219900101123X"}, settings) == ref
    assert subject_ref({"id_number": " 330102 19900101 123x "}, settings) == ref
    assert subject_ref({"id_number": "３３０１０２１９９００１０１１２３ｘ"}, settings) == ref
    # The ID number wins over the phone, so adding a phone keeps the same person.
    assert subject_ref({"id_number": "33010219900101123X", "phone": "13800138000"}, settings) == ref


def test_subject_ref_from_phone_keeps_the_last_11_digits(settings: KernelSettings) -> None:
    ref = subject_ref({"phone": "13800138000"}, settings)
    assert subject_ref({"phone": "+86 138-0013-8000"}, settings) == ref
    assert subject_ref({"id_number": None, "phone": "(0086) 138 0013 8000"}, settings) == ref
    assert subject_ref({"phone": "13800138001"}, settings) != ref


def test_subject_ref_is_the_same_in_every_service_sharing_the_master_key(
    settings: KernelSettings, tmp_path: Path
) -> None:
    other_service = KernelSettings(
        jingmin_home=tmp_path / "elsewhere", master_key=settings.master_key
    )
    ids = {"id_number": "110101199003077777"}
    assert subject_ref(ids, settings) == subject_ref(ids, other_service)
    stranger = KernelSettings(jingmin_home=tmp_path, master_key=key_b64())
    assert subject_ref(ids, settings) != subject_ref(ids, stranger)


def test_without_a_strong_identifier_each_ref_is_fresh(settings: KernelSettings) -> None:
    for ids in (
        {},
        {"id_number": None, "phone": None},
        {"phone": "110"},
        {"id_number": "  ", "phone": "no digits"},
    ):
        a, b = subject_ref(ids, settings), subject_ref(ids, settings)
        assert REF.fullmatch(a) and REF.fullmatch(b) and a != b


def test_subject_ref_refuses_identifier_names_it_does_not_read(settings: KernelSettings) -> None:
    with pytest.raises(ValueError, match="id_number"):
        subject_ref({"idnumber": "110101199003077777"}, settings)


# --- encryption ---------------------------------------------------------------------------


async def test_round_trip(vault: Vault) -> None:
    blob = await vault.encrypt(None, "sub_a", "张三 13800138000")
    assert set(blob) == {"enc", "sub", "n", "ct"}
    assert blob["enc"] == "aesgcm1" and blob["sub"] == "sub_a"
    assert is_personal_blob(blob)
    assert "13800138000" not in json.dumps(blob, ensure_ascii=False)
    assert await vault.decrypt(None, blob) == "张三 13800138000"
    assert await vault.reveal(None, blob) == "张三 13800138000"
    # Fresh nonce each time: equal plaintexts do not give equal ciphertexts.
    assert (await vault.encrypt(None, "sub_a", "张三 13800138000"))["ct"] != blob["ct"]


async def test_fields_keep_none(vault: Vault) -> None:
    blobs = await vault.encrypt_fields(
        None, "sub_a", {"name": "李四", "phone": None, "narrative": ""}
    )
    assert blobs["phone"] is None and is_personal_blob(blobs["name"])
    assert await vault.decrypt_fields(None, blobs) == {
        "name": "李四",
        "phone": None,
        "narrative": "",
    }


def test_is_personal_blob() -> None:
    assert not is_personal_blob("plain")
    assert not is_personal_blob(None)
    assert not is_personal_blob({"enc": "aesgcm1", "sub": "s", "n": "x"})
    assert not is_personal_blob({"enc": "rot13", "sub": "s", "n": "x", "ct": "y"})


async def test_a_blob_moved_to_another_subject_does_not_open(vault: Vault) -> None:
    blob = await vault.encrypt(None, "sub_a", "secret")
    await vault.encrypt(None, "sub_b", "other")
    with pytest.raises(PersonalDataError):
        await vault.decrypt(None, {**blob, "sub": "sub_b"})
    with pytest.raises(PersonalDataError):
        await vault.decrypt(None, {**blob, "ct": base64.b64encode(b"x" * 20).decode()})
    with pytest.raises(PersonalDataError):
        await vault.decrypt(None, {"enc": "aesgcm1"})


async def test_concurrent_first_writes_agree_on_one_key(vault: Vault) -> None:
    blobs = await asyncio.gather(*(vault.encrypt(None, "sub_new", f"v{i}") for i in range(20)))
    vault.forget("sub_new")
    assert [await vault.decrypt(None, b) for b in blobs] == [f"v{i}" for i in range(20)]


# --- erasure ------------------------------------------------------------------------------


async def test_erase_shreds_one_person_and_spares_the_others(vault: Vault) -> None:
    mine = await vault.encrypt_fields(None, "sub_a", {"name": "王五", "phone": "13900000000"})
    theirs = await vault.encrypt(None, "sub_b", "赵六")
    assert await vault.decrypt(None, mine["name"] or {}) == "王五"  # now cached

    assert await vault.erase(None, "sub_a", by="officer-7", reason="request 42") is True
    assert await vault.is_erased(None, "sub_a")
    assert await vault.decrypt_fields(None, mine) == {"name": None, "phone": None}
    assert await vault.reveal_fields(None, {**mine, "address": None}) == {
        "name": ERASED,
        "phone": ERASED,
        "address": None,
    }
    assert await vault.decrypt(None, theirs) == "赵六"
    assert await vault.erase(None, "sub_a", by="officer-7", reason=None) is False


async def test_no_new_data_for_an_erased_person(vault: Vault) -> None:
    await vault.encrypt(None, "sub_a", "x")
    await vault.erase(None, "sub_a", by="admin", reason=None)
    with pytest.raises(SubjectErased):
        await vault.encrypt(None, "sub_a", "resurrected?")
    with pytest.raises(SubjectErased):
        await vault.encrypt_fields(None, "sub_a", {"name": "x"})


async def test_erasing_someone_never_seen_blocks_future_data(vault: Vault) -> None:
    assert await vault.erase(None, "sub_unknown", by="admin", reason="pre-emptive") is True
    with pytest.raises(SubjectErased):
        await vault.encrypt(None, "sub_unknown", "x")


async def test_plaintext_never_reaches_the_logs(
    vault: Vault, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    blob = await vault.encrypt(None, "sub_a", "ID 110101199003077777")
    await vault.decrypt(None, blob)
    await vault.erase(None, "sub_a", by="admin", reason=None)
    try:
        await vault.encrypt(None, "sub_a", "ID 110101199003077777")
    except SubjectErased as exc:
        assert "110101199003077777" not in str(exc)
    assert "110101199003077777" not in caplog.text

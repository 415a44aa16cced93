"""Tests of ``speechmapper push`` (speechmapper_plugin.inference.publish), offline: everything
up to the ``huggingface_hub.upload_folder`` call, which is replaced by a recorder."""

import os

import huggingface_hub
import pytest

from speechmapper_plugin.inference import cli
from speechmapper_plugin.inference.export import export_model

from .test_pretrained import build_tiny_setup


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return build_tiny_setup(tmp_path_factory.mktemp("push"))


@pytest.fixture
def hub(monkeypatch):
    calls = {}

    def create_repo(repo_id, **kwargs):
        calls["create_repo"] = {"repo_id": repo_id, **kwargs}

    def upload_folder(**kwargs):
        calls["upload_folder"] = kwargs
        with open(os.path.join(kwargs["folder_path"], "README.md"), encoding="utf-8") as f:
            calls["card"] = f.read()
        return huggingface_hub.CommitInfo(
            commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/1",
            commit_message="m",
            commit_description="",
            oid="1",
        )

    monkeypatch.setattr(huggingface_hub, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub, "upload_folder", upload_folder)
    return calls


def test_push_uploads_the_published_folder(tiny, tmp_path, hub, capsys):
    out = export_model(
        tiny["stage1"], str(tmp_path / "pub"), overrides={"llm_source": "org/tiny-llm"}
    )
    status = cli.main(["push", out, "me/my-model", "--private"])
    assert status == 0, capsys.readouterr().err
    upload = hub["upload_folder"]
    assert upload["folder_path"] == out and upload["repo_id"] == "me/my-model"
    assert upload["repo_type"] == "model" and "export.json" in upload["ignore_patterns"]
    assert hub["create_repo"]["private"] is True and hub["create_repo"]["exist_ok"] is True
    # The card's usage snippet names the repository it is pushed to.
    assert 'from_hparams(source="me/my-model"' in hub["card"]
    assert "https://huggingface.co/me/my-model/commit/1" in capsys.readouterr().out


def test_push_refuses_local_model_paths(tiny, tmp_path, hub, capsys):
    out = export_model(tiny["stage1"], str(tmp_path / "pub"))  # the tiny LLM is a local folder
    status = cli.main(["push", out, "me/my-model"])
    err = capsys.readouterr().err
    assert status == 2 and "llm_source=" in err and "--set llm_source=<hub id>" in err
    assert "upload_folder" not in hub


def test_push_refuses_incomplete_folders_and_bad_ids(tiny, tmp_path, hub, capsys):
    out = export_model(
        tiny["stage1"], str(tmp_path / "pub"), overrides={"llm_source": "org/tiny-llm"}
    )
    assert cli.main(["push", out, "no-namespace"]) == 2
    assert "namespace/name" in capsys.readouterr().err
    os.remove(os.path.join(out, "README.md"))
    assert cli.main(["push", out, "me/my-model"]) == 2
    assert "has no README.md" in capsys.readouterr().err
    assert cli.main(["push", tiny["stage1"], "me/my-model"]) == 2
    assert "not a published model folder" in capsys.readouterr().err
    assert "upload_folder" not in hub

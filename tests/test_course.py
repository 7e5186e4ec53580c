"""The course helpers (collab_lib.course) that notebooks rely on, without training anything."""
import json

import pytest
import torch

from collab_lib import course
from collab_lib.config import TrainConfig


def test_smoke_mode_follows_course_smoke_then_the_ci_variable(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("COURSE_SMOKE", raising=False)
    assert not course.smoke_mode()
    monkeypatch.setenv("CI", "true")
    assert course.smoke_mode()
    monkeypatch.setenv("COURSE_SMOKE", "0")  # make test-full: the full course even on a CI machine
    assert not course.smoke_mode()
    monkeypatch.delenv("CI")
    monkeypatch.setenv("COURSE_SMOKE", "Yes")  # make test: smoke without claiming to be CI
    assert course.smoke_mode()
    monkeypatch.setenv("COURSE_SMOKE", "")  # empty = unset
    assert not course.smoke_mode()
    monkeypatch.setenv("COURSE_SMOKE", "fast")
    with pytest.raises(ValueError, match="COURSE_SMOKE='fast' \\(str\\) is not valid: expected a boolean"):
        course.smoke_mode()


def test_course_config_is_small_in_smoke_mode_and_the_default_otherwise():
    smoke, full = course.course_config(True), course.course_config(False)
    assert smoke.steps < full.steps and smoke.train_samples < full.train_samples
    assert full.steps == TrainConfig().steps and full.image_size == TrainConfig().image_size
    assert smoke.run_dir != full.run_dir and str(course.COURSE_RUNS) in smoke.run_dir
    assert course.course_config(True, run_dir="x").run_dir == "x"


def test_config_hash_ignores_runtime_fields_only():
    base = TrainConfig()
    assert course.config_hash(base) == course.config_hash(TrainConfig(workers=0, device="cpu"))
    assert course.config_hash(base) != course.config_hash(TrainConfig(steps=base.steps + 1))


def test_mismatches_and_finished(tmp_path):
    config = TrainConfig()
    (tmp_path / "config.json").write_text(json.dumps({"config": {**config.to_dict(), "method": "dml"}}))
    assert course.mismatches(tmp_path, config) == {"method": ("dml", "collab")}
    assert not course.finished(tmp_path)
    (tmp_path / "metrics.json").write_text(json.dumps({"steps": 7}))
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "step_000003.pt").write_bytes(b"")
    assert course.finished(tmp_path)
    assert list(course.list_checkpoints(tmp_path)) == ["step 0 (untrained)", "step 3", "step 7 (last)"]


def test_load_or_train_uses_a_matching_finished_run_without_training(tmp_path, monkeypatch, capsys):
    config = course.course_config(True, run_dir=str(tmp_path / "cache"))
    made = tmp_path / "make-train"
    made.mkdir()
    (made / "config.json").write_text(json.dumps({"config": {**config.to_dict(), "steps": 999}}))
    (made / "metrics.json").write_text("{}")
    (made / "last.pt").write_bytes(b"")
    monkeypatch.setattr(course, "train_with_snapshots", lambda *a, **k: pytest.fail("must not train"))
    assert course.load_or_train(made, config) == made
    assert "loading" in capsys.readouterr().out


def test_load_or_train_trains_when_the_run_has_other_settings(tmp_path, monkeypatch, capsys):
    config = course.course_config(True, run_dir=str(tmp_path / "cache"))
    made = tmp_path / "make-train"
    made.mkdir()
    (made / "config.json").write_text(json.dumps({"config": {**config.to_dict(), "cnn": "deeplabv3plus_mobilenetv2"}}))
    (made / "metrics.json").write_text("{}")
    (made / "last.pt").write_bytes(b"")
    calls = []
    monkeypatch.setattr(course, "train_with_snapshots", lambda c, s: calls.append((c, s)))
    assert course.load_or_train(made, config, snapshot_steps=(5,)) == tmp_path / "cache"
    assert calls == [(config, (5,))]
    out = capsys.readouterr().out
    assert "other settings" in out and "trained in" in out


def test_train_with_snapshots_asks_the_trainer_for_them(tmp_path, monkeypatch):
    """One fresh run with the trainer's snapshot_steps (steps outside 1 .. steps-1 dropped), not stop/resume pieces."""
    calls = []
    monkeypatch.setattr(course, "train", lambda config: calls.append(config) or config.run_dir)
    config = course.course_config(True, run_dir=str(tmp_path / "run"), resume=True)
    course.train_with_snapshots(config, (20, 10, 10, 0, 30, 99))
    assert len(calls) == 1 and calls[0].snapshot_steps == (10, 20)
    assert calls[0].overwrite and not calls[0].resume and calls[0].stop_at_step is None
    assert course.snapshot_path(tmp_path, 25).name == "step_000025.pt"


def test_load_students_builds_the_trainers_loss(tmp_path):
    """course.load_students and the trainer build the loss with one function (collab_lib.students.build_loss)."""
    from collab_lib import students

    config = course.course_config(True, run_dir=str(tmp_path), method="dml", temperature=2.0)
    (tmp_path / "config.json").write_text(json.dumps({"config": config.to_dict()}))
    (tmp_path / "metrics.json").write_text(json.dumps({"class_names": [str(i) for i in range(11)]}))
    cnn, vit, loss_fn, loaded = course.load_students(tmp_path, checkpoint=None)
    assert loaded == config and loss_fn.method == "dml" and not loss_fn.training
    torch.manual_seed(config.seed)
    again = students.build_loss(config, *students.build_students(config, 11))
    assert type(again) is type(loss_fn) and again.method == loss_fn.method and again.weights == loss_fn.weights


def test_teaching_by_class_counts_shares_of_valid_pixels():
    target = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]])
    teacher = torch.tensor([[[1, -1, 1, 1], [0, 0, 1, -1]]])
    cnn, vit = course.teaching_by_class(teacher, target, num_classes=4)
    assert cnn[:3].tolist() == [0.5, 1.0, 0.0] and vit[:3].tolist() == [0.5, 0.0, 0.0]
    assert torch.isnan(cnn[3]) and torch.isnan(vit[3])


def test_linear_cka_is_one_for_a_rotation_and_low_for_noise():
    torch.manual_seed(0)
    a = torch.randn(2, 8, 6, 6)
    rotation, _ = torch.linalg.qr(torch.randn(8, 8))
    b = torch.einsum("bchw,cd->bdhw", a, rotation) * 3.0
    assert course.linear_cka(a, b) == pytest.approx(1.0, abs=1e-6)
    assert course.linear_cka(a, torch.randn(2, 5, 3, 3)) < 0.5  # also resizes b to a's grid


def test_first_items_stacks_a_batch():
    data = [(torch.zeros(3, 4, 4), torch.zeros(4, 4, dtype=torch.long))] * 5
    images, labels = course.first_items(data, 3)
    assert images.shape == (3, 3, 4, 4) and labels.shape == (3, 4, 4)


def test_hfd_projections_returns_channels_first_projections():
    from collab_lib.losses import HFDLoss

    torch.manual_seed(0)
    hfd = HFDLoss(cnn_channels=16, vit_channels=8)
    low_cnn, low_vit = torch.randn(2, 16, 8, 16), torch.randn(2, 8, 8, 16)
    loss, info, attn_cnn, mlp_vit = course.hfd_projections(hfd, low_cnn, low_vit)
    assert attn_cnn.shape == (2, 8, 8, 16) and mlp_vit.shape == (2, 16, 8, 16)
    # the projectors' own outputs, moved to channels-first (a reshape in place of the permute would differ)
    torch.testing.assert_close(attn_cnn, hfd.attn(low_cnn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).detach())
    torch.testing.assert_close(mlp_vit, hfd.mlp(low_vit.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).detach())
    assert torch.isfinite(loss) and set(info) >= {"cnn_learns", "vit_learns"}


def test_hfd_projections_are_what_the_loss_scores():
    """The pictures show the loss's own projections: resized to the target's grid, they give its d per direction."""
    from collab_lib.losses import HFDLoss
    from collab_lib.losses.hfd import channels_last, feature_distance, resize_channels_last

    torch.manual_seed(1)
    hfd = HFDLoss(cnn_channels=16, vit_channels=8)
    low_cnn, low_vit = torch.randn(2, 16, 16, 32), torch.randn(2, 8, 8, 16)  # different grids: the resize matters
    loss, info, attn_cnn, mlp_vit = course.hfd_projections(hfd, low_cnn, low_vit)
    assert attn_cnn.shape == (2, 8, 16, 32) and mlp_vit.shape == (2, 16, 8, 16)  # each on its own input's grid
    cnn_d = feature_distance(resize_channels_last(channels_last(attn_cnn), (8, 16)), channels_last(low_vit)).mean()
    vit_d = feature_distance(resize_channels_last(channels_last(mlp_vit), (16, 32)), channels_last(low_cnn)).mean()
    torch.testing.assert_close(cnn_d, info["cnn_learns"])
    torch.testing.assert_close(vit_d, info["vit_learns"])
    torch.testing.assert_close(loss, cnn_d + vit_d)

"""The untrimmed preset (tstam.synthetic.untrimmed): the labelled action in 10-25 % of the clip, other
classes' actions around it, and the cue that marks it, measured on rendered frames."""
from __future__ import annotations

import dataclasses
import json
import math

import cv2
import numpy as np
import pytest

from tstam.synthetic import CATALOG, DEMO_CLASSES, clip_rng, generate, get_class, load_annotations, make_config
from tstam.synthetic.render import render_scene
from tstam.synthetic.scene import sample_scene

from helpers.synthetic import (
    APPEARANCE,
    CLEAN,
    MOTION,
    assert_same_means,
    either_way_direction,
    grey_frames,
    pose_stats,
    render_clip,
    shows_motion,
    window_flow,
)

PAIR = ["Approach", "Separate"]


def _actor_masks(scene, actors):
    """(T, H, W) coverage of the given actors alone."""
    _, masks = render_scene(dataclasses.replace(scene, actors=[scene.actors[i] for i in actors], cues=[],
                                                distractors=[]), with_masks=True)
    return masks


def test_preset():
    cfg = make_config("untrimmed")
    assert cfg.other_actions and cfg.window_cue
    assert (cfg.num_frames, cfg.window_min, cfg.window_max) == (48, 0.10, 0.25)
    assert cfg.classes == list(DEMO_CLASSES) and (cfg.height, cfg.width) == (112, 112)
    for preset in ("demo", "localized", "tiny"):  # the other presets draw and show nothing of it
        other = make_config(preset)
        assert not other.other_actions and not other.window_cue
        scene = sample_scene(get_class(other.classes[0]), other, clip_rng(0, "train", other.classes[0], 0))
        assert scene.others == [] and scene.cues == []


def test_annotations_record_the_window_and_the_other_actions(tmp_path):
    """annotations.json: the labelled window, and each other action's class, label, frames and
    actor; the other actions come from the label's family, outside the window, apart from each other,
    and fill most of the clip outside the window."""
    classes = ["MoveUp", "MoveDown", "Spin", "Grow", "Approach", "Separate", "WaveRed", "WaveBlue"]
    cfg = make_config("untrimmed", {"height": 64, "width": 64, "train_per_class": 3, "test_per_class": 1,
                                    "classes": classes})
    generate(tmp_path / "u", cfg, seed=3)
    raw = json.loads((tmp_path / "u" / "annotations.json").read_text())
    ann = load_annotations(tmp_path / "u")
    assert len(ann) == len(raw) == 4 * len(classes)
    covered = []
    for vid, a in ann.items():
        start, end = a.window
        assert 5 <= end - start <= 12, (vid, a.window)  # round(0.10 * 48) .. round(0.25 * 48)
        assert a.others and raw[vid]["others"][0]["class_name"] == a.others[0].class_name
        frames = np.zeros(a.num_frames, int)
        frames[start:end] += 1
        last_end = -1
        for o in a.others:
            c = CATALOG[o.class_name]
            assert o.class_name != a.class_name and classes[o.label] == o.class_name
            if a.group == "appearance":
                assert c.group == "appearance" and o.actors == (1,)
                assert len({x.class_name for x in a.others}) == 1  # one second actor, one colour
            elif a.group == "interaction":
                assert (c.group, o.actors) == ("interaction", (0, 1)) or (c.motion in ("cw", "ccw", "spin") and o.actors in ((0,), (1,)))
            else:
                assert c.group == "motion" and o.actors == (0,)
            lo, hi = o.window
            assert hi - lo >= 5 and lo > last_end, (vid, a.others)  # at least one idle frame between two
            last_end = hi
            frames[lo:hi] += 1
        assert frames.max() == 1, (vid, a.window, a.others)  # no overlap, none in the window
        covered.append((frames[:start].sum() + frames[end:].sum()) / (a.num_frames - (end - start)))
    assert np.mean(covered) > 0.7 and min(covered) > 0.4, np.round(covered, 2)
    # the presets without other actions write no "others" (their files stay as they were)
    generate(tmp_path / "t", make_config("tiny", {"classes": ["MoveUp"], "train_per_class": 1, "test_per_class": 0}),
             seed=0)
    assert all("others" not in rec for rec in json.loads((tmp_path / "t" / "annotations.json").read_text()).values())
    assert all(a.others == () for a in load_annotations(tmp_path / "t").values())


def test_the_cue_is_in_the_window_only_and_flow_sees_it_pulse():
    """In grey frames: the ring is the brightest thing drawn (above 195: actors reach 182, the
    background less), so the frames showing it are exactly the action window, 10-25 % of the
    clip. Optical flow (Farneback) on the ring's band around the labelled actor moves in and out
    with the drawn pulse; frame differences there are large in the window and small outside."""
    cfg = make_config("untrimmed", {"height": 64, "width": 64, "noise_std": 0.0, "distractors_max": 0})
    h = w = 64
    ys, xs = np.mgrid[:h, :w].astype(np.float32)
    measured, drawn, ratios = [], [], []
    for name in DEMO_CLASSES:
        for i in range(2):
            scene, frames, masks = render_clip(name, cfg, seed=5, index=i)
            grey = grey_frames(frames)
            start, end = scene.window
            shown = np.flatnonzero((grey > 195).sum((1, 2)) >= 10)
            assert list(shown) == list(range(start, end)), (name, i, scene.window, shown)
            assert 0.10 <= len(shown) / cfg.num_frames <= 0.25
            for cue in scene.cues:
                a = scene.actors[cue.actor]
                change = []
                for t in range(cfg.num_frames - 1):
                    d = np.hypot(xs - a.cx[t], ys - a.cy[t]) / a.radius[t]
                    band = (d > 1.25) & (d < 1.95) & (masks[t] < 0.01) & (masks[t + 1] < 0.01)
                    change.append(np.abs(grey[t + 1] - grey[t])[band].mean())
                    if start <= t < end - 1:
                        flow = cv2.calcOpticalFlowFarneback(grey[t].astype(np.uint8), grey[t + 1].astype(np.uint8),
                                                            None, 0.5, 3, 9, 3, 5, 1.1, 0)
                        dx, dy = xs - a.cx[t], ys - a.cy[t]
                        radial = (flow[..., 0] * dx + flow[..., 1] * dy) / (np.hypot(dx, dy) + 1e-6)
                        measured.append(radial[band].mean())
                        ring = [cue.scale * a.radius[k] + cue.amplitude * math.sin(2 * math.pi * k / cue.period + cue.phase)
                                for k in (t, t + 1)]
                        drawn.append(ring[1] - ring[0])
                change = np.array(change)
                outside = np.ones(len(change), bool)
                outside[max(start - 1, 0):end] = False  # nor the transitions into / out of the window
                ratios.append(np.median(change[start:end - 1]) / (np.median(change[outside]) + 1e-3))
    assert np.corrcoef(measured, drawn)[0, 1] > 0.9, np.corrcoef(measured, drawn)
    assert min(ratios) > 5, np.round(ratios, 1)


def test_outside_the_window_the_other_classes_act():
    """Farneback flow on the performing actor(s), at 96x96: each other action shows its own class's
    motion (the criteria its class's own windows meet in test_synthetic) and not the labelled
    class's; the labelled window shows the labelled class."""
    cfg = make_config("untrimmed", {**CLEAN, "height": 96, "width": 96})
    own, label_like, windows = [], [], []
    for name in MOTION + PAIR:
        for i in range(2):
            scene, frames, masks = render_clip(name, cfg, seed=7, index=i)
            performers = list(range(len(scene.actors)))
            windows.append(shows_motion(name, window_flow(frames, _actor_masks(scene, performers), scene.actors,
                                                     scene.window), either_way_direction(scene)))
            for o in scene.others:
                stats = window_flow(frames, _actor_masks(scene, o.actors), [scene.actors[k] for k in o.actors],
                                     o.window)
                own.append(shows_motion(o.class_name, stats, o.direction))
                label_like.append(shows_motion(name, stats, either_way_direction(scene)))
    assert len(own) > 40 and np.mean(own) >= 0.9 and np.mean(label_like) <= 0.05, (np.mean(own), np.mean(label_like))
    assert all(windows), windows


def test_colour_clips_a_second_actor_of_another_colour_waves_outside_the_window(tmp_path):
    """Same seed, different colour classes: the same grey frames (both actors, their waves, the
    ring), so optical flow cannot tell them apart; the second actor has the colour of a clip whose
    label is its class, and it moves in its own windows and stays put in the labelled one."""
    cfg = make_config("untrimmed", {"height": 64, "width": 64, "noise_std": 0.0})
    ref_scene, ref, _ = render_clip(APPEARANCE[0], cfg, rng=np.random.default_rng(11))
    ref_grey = grey_frames(ref)
    for name in APPEARANCE[1:]:
        scene, frames, _ = render_clip(name, cfg, rng=np.random.default_rng(11))
        assert scene.window == ref_scene.window and [o.window for o in scene.others] == [o.window for o in ref_scene.others]
        grey = grey_frames(frames)
        assert np.abs(grey - ref_grey).max() <= 2 and np.abs(grey - ref_grey).mean() < 0.5, name
    # Each colour as the labelled actor shows it (a reference independent of the second actor's draw).
    def mean_rgb(frames, masks):
        return (frames * masks[..., None]).sum((0, 1, 2)) / masks.sum()

    colour = {}
    for name in APPEARANCE:
        scene, frames, _ = render_clip(name, cfg, seed=2, index=0)
        colour[name] = mean_rgb(frames.astype(np.float64), _actor_masks(scene, [0]))
    for name in APPEARANCE:
        for i in range(3):
            scene, frames, _ = render_clip(name, cfg, seed=9, index=i)
            other = scene.others[0].class_name
            second = _actor_masks(scene, [1])
            seen = mean_rgb(frames.astype(np.float64), second)
            nearest = min(colour, key=lambda c: np.abs(colour[c] - seen).sum())
            assert nearest == other != name, (name, i, other, nearest)
            grey = grey_frames(frames)
            diff = np.array([(np.maximum(second[t], second[t + 1]) * np.abs(grey[t + 1] - grey[t])).sum()
                             / np.maximum(second[t], second[t + 1]).sum() for t in range(cfg.num_frames - 1)])
            acting = np.zeros(len(diff), bool)
            for o in scene.others:
                acting[o.window[0]:o.window[1] - 1] = True
            start, end = scene.window
            assert diff[acting].mean() > 4 * diff[start:end - 1].mean(), (name, i, np.round(diff, 1))


def test_window_frames_do_not_reveal_the_motion_class():
    """RGB sees the cue, so a frame inside the window must not reveal the motion class: over the
    window's frames, position, size and orientation have the same distribution in every class of
    the group (the sampled poses, 300 clips per class, as test_motion_classes_have_equal_pose_marginals)."""
    cfg = make_config("untrimmed")
    n = 300
    for group in (MOTION, PAIR):
        stats = {}
        for name in group:
            rows = []
            for i in range(n):
                s = sample_scene(get_class(name), cfg, clip_rng(4, "train", name, i))
                rows.append(pose_stats(s, cfg.width, cfg.height)[slice(*s.window)].mean(0))
            stats[name] = np.array(rows)
        assert_same_means(stats)


def test_untrimmed_scenes_are_frozen():
    """The untrimmed preset's clips stay what they were when it was frozen (generator version 3,
    before any model was trained on it): the sampled scenes of 2 clips per class, summed. A change
    that moves these numbers must bump GENERATOR_VERSION."""
    cfg = make_config("untrimmed")
    ints, floats = [], []
    for name in cfg.classes:
        for i in range(2):
            s = sample_scene(get_class(name), cfg, clip_rng(0, "train", name, i))
            ints += [*s.window, s.noise_seed, s.background.seed, len(s.distractors)]
            for o in s.others:
                ints += [*o.window, *o.actors, cfg.classes.index(o.class_name)]
            for a in s.actors:
                floats += [*a.cx, *a.cy, *a.radius, *a.angle, a.luma, a.stripe_amp, *a.hues]
            for c in s.cues:
                floats += [c.actor, c.luma, c.scale, c.amplitude, c.period, c.phase, c.width]
    f = np.array(floats)
    assert (sum(ints), len(f)) == (49764641208, 7198)
    assert float(f.sum()) == pytest.approx(245490.46051350463, rel=1e-12)
    assert float((f * (np.arange(len(f)) % 7)).sum()) == pytest.approx(735061.0226129156, rel=1e-12)

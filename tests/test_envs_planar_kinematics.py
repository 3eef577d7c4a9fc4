"""envs/planar_kinematics.py: the centre of mass and its velocity in numpy equal MuJoCo's own.

Reference: ``mj_forward`` then ``mj_subtreeVel`` on an MjData, one state at a time (``subtree_com`` and
``subtree_linvel`` of the root body). Both cheetah models (the authors' and Gymnasium's) and a small planar model
with what the cheetahs lack (body frames turned about y, a hinge about −y, a slide along y and a tilted one, joint
anchors off the body origin, qpos0 ≠ 0), random states far from the initial pose, every body as the subtree's root.
"""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from metarl.envs.planar_kinematics import PlanarSubtreeCOM

from metarl.families import make_family

PLANAR_XML = """
<mujoco>
  <worldbody>
    <body name="base" pos="0.1 0.2 0.3" euler="0 30 0">
      <joint name="tilted" type="slide" axis="1 0 1"/>
      <joint name="sideways" type="slide" axis="0 1 0"/>
      <joint name="pitch" type="hinge" axis="0 -1 0" pos="0.2 0 -0.1" ref="0.3"/>
      <geom type="box" size="0.3 0.1 0.05" pos="0.05 0 0.02" mass="2"/>
      <body name="arm" pos="0.4 0.1 0" euler="0 -50 0">
        <joint name="elbow" type="hinge" axis="0 1 0" pos="-0.1 0 0.05"/>
        <geom type="capsule" fromto="0 0 0 0.3 0 -0.2" size="0.04" mass="0.7"/>
        <body name="hand" pos="0.3 0 -0.2">
          <joint name="wrist" type="hinge" axis="0 -1 0"/>
          <geom type="sphere" size="0.05" pos="0.05 0 0" mass="0.2"/>
        </body>
      </body>
      <body name="tail" pos="-0.3 0 0">
        <joint name="tail" type="hinge" axis="0 1 0" pos="0.02 0 0"/>
        <geom type="capsule" fromto="0 0 0 -0.2 0 0.1" size="0.03" mass="0.3"/>
      </body>
    </body>
  </worldbody>
</mujoco>
"""
MODELS = {version: make_family("halfcheetah-vel", version).make_env().unwrapped.model
          for version in ("finn2017", "gym-v5")}
MODELS["planar test model"] = mujoco.MjModel.from_xml_string(PLANAR_XML)


def _mujoco(model, body, qpos, qvel):
    data = mujoco.MjData(model)
    com, vel = np.zeros((len(qpos), 3)), np.zeros((len(qpos), 3))
    for i in range(len(qpos)):
        data.qpos[:], data.qvel[:] = qpos[i], qvel[i]
        mujoco.mj_forward(model, data)
        mujoco.mj_subtreeVel(model, data)
        com[i], vel[i] = data.subtree_com[body], data.subtree_linvel[body]
    return com, vel


@settings(max_examples=25, deadline=None)
@given(version=st.sampled_from(sorted(MODELS)), seed=st.integers(0, 2**31 - 1), scale=st.floats(0.01, 3.0))
def test_centre_of_mass_and_velocity_equal_mujoco(version, seed, scale):
    model = MODELS[version]
    rng = np.random.default_rng(seed)
    qpos = model.qpos0 + scale * rng.standard_normal((6, model.nq))
    qvel = 3 * scale * rng.standard_normal((6, model.nv))
    for body in range(1, model.nbody):
        com, vel = PlanarSubtreeCOM(model, body)(qpos, qvel)
        want_com, want_vel = _mujoco(model, body, qpos, qvel)
        np.testing.assert_allclose(com, want_com, rtol=0, atol=1e-12)
        np.testing.assert_allclose(vel, want_vel, rtol=0, atol=1e-11 * max(1.0, np.abs(qvel).max()))


def test_a_model_not_planar_about_y_is_refused_in_one_line():
    ant = make_family("ant-vel").make_env().unwrapped.model
    with pytest.raises(ValueError, match="joint 'root' is not a slide or a hinge about y") as error:
        PlanarSubtreeCOM(ant, 1)
    assert "\n" not in str(error.value)

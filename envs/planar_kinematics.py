"""A planar robot's subtree centre of mass and its velocity for a batch of states, in numpy, without an MjData.

The batched cheetah steps its physics with MuJoCo's ``rollout`` (one C call for all episodes, states in and out),
so no MjData holds the new state's kinematics. Its observation and reward need the torso subtree's centre of mass
and that point's velocity (MuJoCo's ``subtree_com`` and ``subtree_linvel``). This computes both for all states at
once with MuJoCo's forward kinematics, body by body in tree order, for a model that moves in the x-z plane: every
hinge turns about ±y and every body frame is turned about y only (slides may point anywhere). In that plane a point
(x, z) is the complex number x + iz and a turn by φ about y is a product with u = e^(−iφ), so a body's pose is one
complex u and one complex position (plus a y that only slides change), and each step below is one numpy operation
on [n] arrays for both coordinates, not n 3×3 matrix products:

- a body's frame is its parent's composed with ``body_pos`` / ``body_quat``; then each of its joints in order moves
  it: a slide joint along its axis by q − qpos0, a hinge about its axis through its anchor by q − qpos0 (MuJoCo's
  ``mj_kinematics``);
- velocities are spatial velocities at the world origin, an angular rate ω about y and a linear v₀, so a point p
  moves at v₀ + ω ŷ × p (= v₀ − iωp in the plane): a slide adds axis · q̇ to v₀, a hinge adds w = ±q̇ to ω and
  w (anchor × ŷ) = iw·anchor to v₀;
- the centre of mass is Σ mᵢ pᵢ / M over the subtree's bodies (pᵢ = the body's ``body_ipos`` in world) and its
  velocity Σ mᵢ (v₀ᵢ + ωᵢ ŷ × pᵢ) / M.

The same quantities as MuJoCo's, in another floating-point order (tests/test_envs_planar_kinematics.py: equal to
1e-12).
"""

from __future__ import annotations

import mujoco
import numpy as np


def _planar(v: np.ndarray) -> tuple[complex, float]:
    """A body-frame vector as (x + iz, y)."""
    return complex(v[0], v[2]), float(v[1])


def _angle_about_y(quat: np.ndarray) -> float | None:
    """β where ``quat`` (w, x, y, z) turns by β about +y, None where it turns about another axis."""
    w, x, y, z = quat / np.linalg.norm(quat)
    return None if abs(x) > 1e-12 or abs(z) > 1e-12 else 2.0 * float(np.arctan2(y, w))


class PlanarSubtreeCOM:
    """``(com [n, 3], velocity [n, 3]) = PlanarSubtreeCOM(model, body)(qpos [n, nq], qvel [n, nv])`` for the
    subtree rooted at ``body``; a model that is not planar about y gets a one-line ValueError."""

    def __init__(self, model: mujoco.MjModel, body: int):
        hinge, slide = int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)
        self._bodies = []  # (parent, pos, e^(−iβ), [(joint index, hinge ±1 or slide axis, anchor)])
        signs = []  # per joint: ±1 for a hinge about ±y, 0 for a slide
        for b in range(1, model.nbody):
            beta = _angle_about_y(model.body_quat[b])
            if beta is None:
                raise ValueError(f"PlanarSubtreeCOM: body {model.body(b).name!r} is turned about an axis other than y; "
                                 "only models moving in the x-z plane are supported")
            joints = []
            for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
                kind, axis = int(model.jnt_type[j]), model.jnt_axis[j] / np.linalg.norm(model.jnt_axis[j])
                if kind == hinge and abs(abs(axis[1]) - 1.0) < 1e-12:
                    signs.append(float(np.sign(axis[1])))
                    joints.append((j, signs[-1], _planar(model.jnt_pos[j])))
                elif kind == slide:
                    signs.append(0.0)
                    joints.append((j, _planar(axis), None))
                else:
                    raise ValueError(f"PlanarSubtreeCOM: joint {model.joint(j).name!r} is not a slide or a hinge about "
                                     "y; only models moving in the x-z plane are supported")
            self._bodies.append((int(model.body_parentid[b]), _planar(model.body_pos[b]), np.exp(-1j * beta), joints))
        self._qposadr, self._dofadr = model.jnt_qposadr.copy(), model.jnt_dofadr.copy()
        self._qpos0 = model.qpos0[model.jnt_qposadr]
        self._turn = -1j * np.array(signs)  # a hinge turns its body by e^(−i·sign·q); a slide's factor e^0 is unused
        self._rate = np.where(np.array(signs) == 0.0, 1.0, signs)  # hinge: ω += sign·q̇; slide: along the axis by q̇
        ipos = model.body_ipos[1:]
        self._ipos, self._ipos_y = ipos[:, 0] + 1j * ipos[:, 2], ipos[:, 1]
        subtree = {int(body)}
        for b in range(1, model.nbody):  # MuJoCo orders bodies so that a parent comes before its children
            if model.body_parentid[b] in subtree:
                subtree.add(b)
        mass = np.array([model.body_mass[b] if b in subtree else 0.0 for b in range(1, model.nbody)])
        self._weights = mass / float(model.body_subtreemass[body])

    def __call__(self, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n, nb = qpos.shape[0], len(self._bodies)
        # Rows are joints or bodies, columns states (contiguous rows): every joint's displacement and rate at once.
        q = (qpos[:, self._qposadr] - self._qpos0).T.copy()
        turns, rates = np.exp(q * self._turn[:, None]), qvel[:, self._dofadr].T * self._rate[:, None]
        # Per body: u, position, y, ω, v₀ (x + iz), v₀ in y; row 0 of each is the world body.
        u_of, p_of, v_of = np.ones((nb + 1, n), complex), np.zeros((nb + 1, n), complex), np.zeros((nb + 1, n), complex)
        y_of, w_of, vy_of = np.zeros((nb + 1, n)), np.zeros((nb + 1, n)), np.zeros((nb + 1, n))
        for b, (parent, pos, turn, joints) in enumerate(self._bodies, start=1):
            u, y, omega, v0, vy = u_of[parent], y_of[parent], w_of[parent], v_of[parent], vy_of[parent]
            p = p_of[parent] + u * pos[0]
            y = y + pos[1]
            if turn != 1.0:
                u = u * turn
            for j, direction, anchor in joints:
                if anchor is not None:  # a hinge about ±y through ``anchor`` (x + iz, y) in the body frame
                    world_anchor = p + u * anchor[0]
                    u = u * turns[j]
                    p = world_anchor - u * anchor[0]
                    omega = omega + rates[j]
                    v0 = v0 + 1j * rates[j] * world_anchor
                else:  # a slide along ``direction`` (x + iz, y) in the body frame
                    axis = u * direction[0]
                    p, y = p + axis * q[j], y + direction[1] * q[j]
                    v0, vy = v0 + axis * rates[j], vy + direction[1] * rates[j]
            u_of[b], p_of[b], y_of[b], w_of[b], v_of[b], vy_of[b] = u, p, y, omega, v0, vy
        points = p_of[1:] + u_of[1:] * self._ipos[:, None]  # each body's centre of mass
        velocities = v_of[1:] - 1j * w_of[1:] * points  # v₀ + ω ŷ × p
        com, vel = self._weights @ points, self._weights @ velocities
        return (np.stack((com.real, self._weights @ (y_of[1:] + self._ipos_y[:, None]), com.imag), axis=1),
                np.stack((vel.real, self._weights @ vy_of[1:], vel.imag), axis=1))

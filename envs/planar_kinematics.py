"""A planar robot's subtree centre of mass and its velocity for a batch of states, in numpy, without an MjData.

The batched cheetah steps its physics with MuJoCo's ``rollout`` (one C call for all episodes, states in and out),
so no MjData holds the new state's kinematics. Its observation and reward need the torso subtree's centre of mass
and that point's velocity (MuJoCo's ``subtree_com`` and ``subtree_linvel``). This computes both for all states at
once with MuJoCo's forward kinematics for a model that moves in the x-z plane: every hinge turns about ±y and every
body frame is turned about y only (slides may point anywhere). In that plane a point (x, z) is the complex number
x + iz, and a frame's orientation is u = e^(−iφ) with φ = β + Σ_j s_j q_j: a constant (the body frames' turns) plus
the displacements q_j = qpos_j − qpos0_j of the hinges above it (s_j = ±1, the hinge's direction along y).

Walking the tree once, at construction, turns MuJoCo's ``mj_kinematics`` into sums of *terms* c · u (· q_j for a
slide): a body's frame is its parent's plus u_parent · ``body_pos``; a hinge about its anchor a adds u · a − u' · a
(u before the turn, u' after); a slide adds u · axis · q_j; a body's centre of mass adds u · ``body_ipos``. With
velocities as spatial velocities at the world origin (a point p moves at v₀ + ω ŷ × p = v₀ − iωp, a hinge adding
ṡ = s_j q̇_j to ω and i ṡ · anchor to v₀, a slide adding axis · q̇_j to v₀), the subtree's centre of mass
Σ mᵢ pᵢ / M and its velocity are linear in the terms' values. So each call is a few numpy operations on
[terms, states] arrays, whatever the tree:

    u = exp(−i(β + S q)),  T = c · u[orientation] (· q_j),  com = w_com · T,  velocity = Σ_j q̇_j (K T)_j,

with S, c, w_com and K fixed by the model. The same quantities as MuJoCo's, in another floating-point order
(tests/test_envs_planar_kinematics.py: equal to 1e-12).
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
        nj = model.njnt
        subtree = {int(body)}
        for b in range(1, model.nbody):  # MuJoCo orders bodies so that a parent comes before its children
            if model.body_parentid[b] in subtree:
                subtree.add(b)
        # Orientations (β, s) with u = exp(−i(β + s·q)); terms (orientation, c, slide joint or −1), value c·u(·q_j).
        orientations: list[tuple[float, np.ndarray]] = [(0.0, np.zeros(nj))]
        terms: list[tuple[int, complex, int]] = []

        width = 2 * (model.nbody + nj)  # at most 2 terms per body (frame offset, centre of mass) and per joint

        def term(orientation: int, c: complex, joint: int = -1) -> np.ndarray:
            """A new term, as a one-hot row over terms (sums of them are positions)."""
            terms.append((orientation, c, joint))
            return np.eye(1, width, len(terms) - 1)[0]

        def turned(orientation: int, beta: float, joint: int = -1, sign: float = 0.0) -> int:
            b0, s0 = orientations[orientation]
            s = s0.copy()
            if joint >= 0:
                s[joint] += sign
            orientations.append((b0 + beta, s))
            return len(orientations) - 1

        frame_pos, frame_u = {0: np.zeros(width)}, {0: 0}  # a body frame's position (over terms), orientation
        frame_y, frame_yq = {0: 0.0}, {0: np.zeros(nj)}  # its y: a constant plus slides' y components times q
        moves = {0: np.zeros(nj, bool)}  # the joints that move a body (its own and its ancestors')
        com_terms, com_y, com_yq = np.zeros(width), 0.0, np.zeros(nj)
        moved_mass = np.zeros(nj)  # W_j: the subtree mass fraction that joint j moves
        omega_terms = np.zeros((nj, width))  # Σ over moved bodies of w_b p_b, per hinge (the −iωp part)
        anchor_terms = np.zeros((nj, width))  # a hinge's world anchor, or a slide's world axis (no q factor)
        slide_y = np.zeros(nj)  # a slide axis's y component
        signs = np.zeros(nj)  # ±1 for a hinge about ±y, 0 for a slide
        for b in range(1, model.nbody):
            beta = _angle_about_y(model.body_quat[b])
            if beta is None:
                raise ValueError(f"PlanarSubtreeCOM: body {model.body(b).name!r} is turned about an axis other than y; "
                                 "only models moving in the x-z plane are supported")
            parent = int(model.body_parentid[b])
            pos_c, pos_y = _planar(model.body_pos[b])
            u = frame_u[parent]
            p = frame_pos[parent] + term(u, pos_c)
            y, yq, moved = frame_y[parent] + pos_y, frame_yq[parent].copy(), moves[parent].copy()
            if beta != 0.0:
                u = turned(u, beta)
            for j in range(model.body_jntadr[b], model.body_jntadr[b] + model.body_jntnum[b]):
                kind, axis = int(model.jnt_type[j]), model.jnt_axis[j] / np.linalg.norm(model.jnt_axis[j])
                moved[j] = True
                if kind == hinge and abs(abs(axis[1]) - 1.0) < 1e-12:
                    signs[j] = np.sign(axis[1])
                    anchor_c = _planar(model.jnt_pos[j])[0]
                    anchor_terms[j] = p + term(u, anchor_c)
                    u = turned(u, 0.0, j, signs[j])
                    p = anchor_terms[j] - term(u, anchor_c)
                elif kind == slide:
                    direction_c, slide_y[j] = _planar(axis)
                    anchor_terms[j] = term(u, direction_c)
                    p = p + term(u, direction_c, j)
                    yq[j] += slide_y[j]
                else:
                    raise ValueError(f"PlanarSubtreeCOM: joint {model.joint(j).name!r} is not a slide or a hinge about "
                                     "y; only models moving in the x-z plane are supported")
            frame_pos[b], frame_u[b], frame_y[b], frame_yq[b], moves[b] = p, u, y, yq, moved
            if b in subtree:
                w = model.body_mass[b] / float(model.body_subtreemass[body])
                ipos_c, ipos_y = _planar(model.body_ipos[b])
                point = p + term(u, ipos_c)
                com_terms += w * point
                com_y, com_yq = com_y + w * (y + ipos_y), com_yq + w * yq
                moved_mass[moved] += w
                omega_terms[moved & (signs != 0)] += w * point
        # Fold each term's constant into the linear maps: rows (the centre of mass, then each joint's velocity factor
        # times the joint's sign, so that a row meets q̇_j itself) over features (each orientation's u, then u·q_j per
        # slide term), so that a call is one matrix product.
        rate = np.where(signs == 0.0, 1.0, signs)[:, None]  # ṙ_j = s_j q̇_j for a hinge, q̇_j for a slide
        rows = np.vstack((com_terms, rate * np.where((signs != 0)[:, None],
                                                     1j * (moved_mass[:, None] * anchor_terms - omega_terms),
                                                     moved_mass[:, None] * anchor_terms)))
        slide_terms = [i for i, t in enumerate(terms) if t[2] >= 0]
        self._maps = np.zeros((rows.shape[0], len(orientations) + len(slide_terms)), complex)
        for i, (orientation, c, joint) in enumerate(terms):
            column = len(orientations) + slide_terms.index(i) if joint >= 0 else orientation
            self._maps[:, column] += rows[:, i] * c
        self._slide_u = np.array([terms[i][0] for i in slide_terms], dtype=np.int64)
        self._slide_q = np.array([terms[i][2] for i in slide_terms], dtype=np.int64)
        # Every joint is a slide or a hinge (one qpos, one dof, in joint order): qpos and qvel are the joints'.
        self._qpos0 = model.qpos0[:, None] if model.qpos0.any() else None
        self._angle0 = -np.array([o[0] for o in orientations])[:, None]  # u = e^(i(angle0 + angle_q q))
        self._angle_q = -np.array([o[1] for o in orientations])
        self._com_y, self._com_yq = com_y, com_yq
        self._velocity_y = moved_mass * slide_y

    def __call__(self, qpos: np.ndarray, qvel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        q, qdot = qpos.T, qvel.T  # [joints, states]
        if self._qpos0 is not None:
            q = q - self._qpos0
        angle = self._angle0 + self._angle_q @ q  # every orientation of every state
        n_u = angle.shape[0]
        features = np.empty((n_u + len(self._slide_u), q.shape[1]), complex)
        np.cos(angle, out=features.real[:n_u])
        np.sin(angle, out=features.imag[:n_u])
        features[n_u:] = features[self._slide_u] * q[self._slide_q]
        out = self._maps @ features  # the centre of mass, then each joint's velocity factor
        velocity = (qdot * out[1:]).sum(axis=0)
        return (np.stack((out[0].real, self._com_y + self._com_yq @ q, out[0].imag), axis=1),
                np.stack((velocity.real, self._velocity_y @ qdot, velocity.imag), axis=1))


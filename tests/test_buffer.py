import jax
import jax.numpy as jnp
import numpy as np

from rewire.buffer import Transition, buffer_add, buffer_from_transitions, buffer_init, sample_mixed


def rows(values, obs_dim=1):
    v = jnp.asarray(values, jnp.float32)
    return Transition(v[:, None].repeat(obs_dim, 1), v[:, None], v, v[:, None].repeat(obs_dim, 1), 0 * v, v)


def test_fifo_wraps_and_only_counted_rows_land():
    buf = buffer_init(1, 1, capacity=4)
    buf = buffer_add(buf, rows([1, 2, 3, 99]), jnp.int32(3))
    assert int(buf.size) == 3 and int(buf.ptr) == 3
    np.testing.assert_array_equal(buf.data.reward, [1, 2, 3, 0])
    buf = buffer_add(buf, rows([4, 5, 99]), jnp.int32(2))
    np.testing.assert_array_equal(buf.data.reward, [5, 2, 3, 4])
    assert int(buf.size) == 4 and int(buf.ptr) == 1


def test_mixed_batches_take_the_stated_share_from_each_buffer():
    offline = buffer_from_transitions(rows(np.full(50, -1.0)))
    online = buffer_add(buffer_init(1, 1, 20), rows(np.full(10, 1.0)), jnp.int32(10))
    batch = sample_mixed(offline, online, jax.random.PRNGKey(0), 16, 0.25)
    np.testing.assert_array_equal(batch.reward, [-1] * 4 + [1] * 12)


def test_empty_online_buffer_falls_back_to_offline_rows():
    offline = buffer_from_transitions(rows(np.full(50, -1.0)))
    batch = sample_mixed(offline, buffer_init(1, 1, 20), jax.random.PRNGKey(0), 8, 0.5)
    np.testing.assert_array_equal(batch.reward, -1)


def test_samples_come_from_filled_rows_only():
    buf = buffer_add(buffer_init(1, 1, 100), rows(np.arange(1, 6)), jnp.int32(5))
    batch = sample_mixed(buf, buf, jax.random.PRNGKey(1), 256, 1.0)
    assert set(np.asarray(batch.reward).tolist()) <= {1, 2, 3, 4, 5}

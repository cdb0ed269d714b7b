"""from_pretrained without Flax's random init: an eager build whose parameters are only shapes, the dropout streams
what a plain build leaves (and the caller's Rngs advance alike), every parameter a concrete loaded array."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import bert_flax
from bert_core.config import tiny_config
from bert_flax.modeling import _device_array, _shape_only_parameters


def _key_data(x):
    return np.asarray(jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x)


def test_every_head_loads_concrete_parameters_equal_to_the_saved_ones(tmp_path):
    config = tiny_config(position_embedding_type="relative_key")
    ids = np.array([[1, 5, 9, 2]])
    for head in ("BertModel", "BertForPreTraining", "BertForMultipleChoice", "BertForQuestionAnswering"):
        cls = getattr(bert_flax, head)
        source = cls(config, seed=3)
        source.save_pretrained(tmp_path / head)
        loaded = cls.from_pretrained(tmp_path / head)
        leaves = jax.tree_util.tree_leaves(nnx.state(loaded))
        assert all(isinstance(x, jax.Array) for x in leaves), head  # nothing abstract is left
        for name, value in source.canonical_weights().items():
            np.testing.assert_array_equal(loaded.canonical_weights()[name], value, err_msg=f"{head}: {name}")
        inputs = ids if head != "BertForMultipleChoice" else ids[None]
        np.testing.assert_allclose(
            np.asarray(loaded(inputs)[0]), np.asarray(source(inputs)[0]), rtol=1e-6, atol=1e-6, err_msg=head
        )


def test_dropout_streams_and_caller_rngs_match_an_eager_build(tmp_path):
    config = tiny_config()
    bert_flax.BertForSequenceClassification(config, seed=0).save_pretrained(tmp_path)
    eager_rngs, loaded_rngs = nnx.Rngs(7), nnx.Rngs(7)
    eager = bert_flax.BertForSequenceClassification(config, seed=None, rngs=eager_rngs)
    loaded = bert_flax.BertForSequenceClassification.from_pretrained(tmp_path, rngs=loaded_rngs)
    a = nnx.state(eager, nnx.Not(nnx.Param))
    b = nnx.state(loaded, nnx.Not(nnx.Param))
    same = jax.tree_util.tree_map(lambda x, y: bool(np.array_equal(_key_data(x), _key_data(y))), a, b)
    flags = jax.tree_util.tree_leaves(same)
    assert flags and all(flags)
    assert int(eager_rngs.default.count[...]) == int(loaded_rngs.default.count[...]) > 0


def test_shape_only_build_allocates_no_parameters_and_leaves_plain_builds_alone():
    config = tiny_config(position_embedding_type="relative_key")
    with _shape_only_parameters():
        shapes = bert_flax.BertForPreTraining(config, seed=None)
    plain = bert_flax.BertForPreTraining(config, seed=None)
    params = jax.tree_util.tree_leaves(nnx.state(shapes, nnx.Param))
    # the LM bias is the one parameter built as zeros outside an initialiser
    assert sum(isinstance(x, jax.ShapeDtypeStruct) for x in params) == len(params) - 1
    expected = jax.tree_util.tree_leaves(nnx.state(plain, nnx.Param))
    assert all(isinstance(x, jax.Array) for x in expected)  # the switch is off again after the block
    assert [(x.shape, x.dtype) for x in params] == [(x.shape, x.dtype) for x in expected]


@pytest.mark.parametrize("param_dtype", [jnp.float32, jnp.bfloat16])
def test_device_arrays_take_the_flax_layout_and_dtype(param_dtype):
    kernel = np.random.default_rng(0).standard_normal((6, 4)).astype(np.float32)
    for transpose, expected in ((True, kernel.T), (False, kernel)):
        value = _device_array(kernel, transpose, param_dtype)
        assert value.dtype == param_dtype and value.shape == expected.shape
        np.testing.assert_array_equal(np.asarray(value), np.asarray(jnp.asarray(expected, param_dtype)))
    kernel[0, 0] = 9.0  # never a view of the source (a checkpoint map whose pages are dropped next)
    assert float(_device_array(kernel, True, param_dtype)[0, 0]) == 9.0 != float(value[0, 0])

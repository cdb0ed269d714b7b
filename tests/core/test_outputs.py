import copy
import pickle

import numpy as np
import pytest

from bert_core.outputs import (
    ALL_OUTPUT_CLASSES,
    BaseModelOutputWithPoolingAndCrossAttentions,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
)


def test_attribute_key_and_index_access_over_non_none_fields():
    logits = np.arange(6.0).reshape(2, 3)
    out = SequenceClassifierOutput(logits=logits, attentions=(np.ones(1),))
    assert out.logits is logits and out["logits"] is logits and out[0] is logits
    assert list(out.keys()) == ["logits", "attentions"]
    assert out.to_tuple() == (logits, out.attentions) and out[1:] == (out.attentions,)
    with pytest.raises(KeyError):
        out["loss"]
    out.loss = np.float32(1.5)
    assert list(out.keys()) == ["loss", "logits", "attentions"] and out[0] == 1.5
    out["loss"] = None
    assert "loss" not in out


def test_rebuilt_from_pairs_like_tf_nest_does():
    out = QuestionAnsweringModelOutput(start_logits=1, end_logits=2)
    rebuilt = type(out)((k, v * 10) for k, v in out.items())
    assert rebuilt.start_logits == 10 and rebuilt.end_logits == 20 and rebuilt.loss is None


def test_pickle_and_deepcopy_keep_fields():
    out = BaseModelOutputWithPoolingAndCrossAttentions(
        last_hidden_state=np.zeros((1, 2, 3)), pooler_output=np.ones((1, 3))
    )
    for clone in (pickle.loads(pickle.dumps(out)), copy.deepcopy(out)):
        assert type(clone) is type(out) and list(clone.keys()) == ["last_hidden_state", "pooler_output"]
        np.testing.assert_array_equal(clone.pooler_output, out.pooler_output)


def test_unknown_field_is_rejected():
    out = SequenceClassifierOutput(logits=1)
    with pytest.raises(KeyError, match="no field 'scores'"):
        out["scores"] = 2
    with pytest.raises(TypeError):
        del out["logits"]


def test_all_classes_have_seed_field_order():
    names = {c.__name__: [f for f in c.__dataclass_fields__] for c in ALL_OUTPUT_CLASSES}
    assert names["BertForPreTrainingOutput"] == [
        "loss",
        "prediction_logits",
        "seq_relationship_logits",
        "hidden_states",
        "attentions",
    ]
    assert names["CausalLMOutputWithCrossAttentions"] == [
        "loss",
        "logits",
        "past_key_values",
        "hidden_states",
        "attentions",
        "cross_attentions",
    ]
    assert names["BaseModelOutputWithPoolingAndCrossAttentions"] == [
        "last_hidden_state",
        "pooler_output",
        "hidden_states",
        "past_key_values",
        "attentions",
        "cross_attentions",
    ]

"""bert_core.training against HF transformers 4.57 (oracle venv only): schedules, decay mask, length grouping, steps."""

import math

import numpy as np
import pytest

transformers = pytest.importorskip("transformers")
if not transformers.__version__.startswith("4.57."):
    pytest.skip(f"oracle tests need transformers 4.57, found {transformers.__version__}", allow_module_level=True)
import torch  # noqa: E402
from transformers import trainer_pt_utils  # noqa: E402

from bert_core.config import BertConfig  # noqa: E402
from bert_core.training import TrainingArguments, decay_mask, learning_rate, order  # noqa: E402

pytestmark = pytest.mark.oracle
transformers.logging.set_verbosity_error()

HF_SCHEDULE = {"linear": "linear", "cosine": "cosine", "constant": "constant_with_warmup"}


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant"])
@pytest.mark.parametrize(
    "total, warmup_ratio, warmup", [(20, 0.0, 0), (20, 0.15, 0), (7, 0.0, 3), (5, 0.0, 5), (3, 0.5, 0)]
)
def test_schedule_equals_get_scheduler(kind, total, warmup_ratio, warmup):
    args = TrainingArguments(
        "o", lr_scheduler_type=kind, warmup_ratio=warmup_ratio, warmup_steps=warmup, learning_rate=3e-4
    ).validate()
    hf_args = transformers.TrainingArguments("o", warmup_ratio=warmup_ratio, warmup_steps=warmup, report_to=[])
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=3e-4)
    sched = transformers.get_scheduler(
        HF_SCHEDULE[kind], opt, num_warmup_steps=hf_args.get_warmup_steps(total), num_training_steps=total
    )
    for step in range(total + 2):
        # what HF's Trainer uses for update `step`: the optimizer's lr after `step` scheduler.step() calls
        assert learning_rate(step, args, total) == opt.param_groups[0]["lr"], (kind, step)
        opt.step()
        sched.step()


@pytest.mark.parametrize(
    "cls", ["BertForPreTraining", "BertForSequenceClassification", "BertForQuestionAnswering", "BertLMHeadModel"]
)
def test_decay_mask_equals_trainer(cls, tmp_path):
    hf_config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=8,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=16,
        is_decoder=cls == "BertLMHeadModel",
        add_cross_attention=cls == "BertLMHeadModel",
        position_embedding_type="relative_key" if cls == "BertForQuestionAnswering" else "absolute",
    )
    model = getattr(transformers, cls)(hf_config)
    trainer = transformers.Trainer(model=model, args=transformers.TrainingArguments(tmp_path, report_to=[]))
    hf_decay = set(trainer.get_decay_parameter_names(model))
    names = [n for n, _ in model.named_parameters()]  # tied decoder listed once, as its embedding
    assert decay_mask(names) == {n: n in hf_decay for n in names}
    assert BertConfig(**hf_config.to_dict())  # the same config builds here too


@pytest.mark.parametrize("n, batch", [(10, 2), (200, 4), (1000, 8), (7, 16)])
def test_length_grouping_equals_hf(n, batch, monkeypatch):
    lengths = np.random.default_rng(n).integers(1, 64, size=n).tolist()
    perm = order.epoch_order(n, 11, 2)
    # HF draws its permutation with torch.randperm; give it ours so only the grouping is compared
    monkeypatch.setattr(trainer_pt_utils.torch, "randperm", lambda *a, **k: torch.from_numpy(perm.copy()))
    hf = trainer_pt_utils.get_length_grouped_indices(lengths, batch)
    ours = order.epoch_order(n, 11, 2, lengths=lengths, group_by_length=True, batch_size=batch)
    assert ours.tolist() == list(hf)


@pytest.mark.parametrize("n, b, k, epochs", [(10, 3, 2, 2.5), (64, 8, 3, 1.0), (5, 8, 1, 3.0)])
def test_total_steps_equals_trainer(n, b, k, epochs, tmp_path):
    class Data(torch.utils.data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            return {"x": torch.zeros(1)}

    hf_args = transformers.TrainingArguments(
        tmp_path,
        per_device_train_batch_size=b,
        gradient_accumulation_steps=k,
        num_train_epochs=epochs,
        report_to=[],
        use_cpu=True,
    )
    trainer = transformers.Trainer(model=torch.nn.Linear(1, 1), args=hf_args, train_dataset=Data())
    loader = trainer.get_train_dataloader()
    values = trainer.set_initial_training_values(hf_args, loader, b)
    hf_per_epoch, hf_total = values[1], values[-1]
    args = TrainingArguments(
        "o", per_device_train_batch_size=b, gradient_accumulation_steps=k, num_train_epochs=epochs
    ).validate()
    assert order.total_steps(args, n) == hf_total
    assert order.steps_per_epoch(n, b, k) == hf_per_epoch == math.ceil(len(loader) / k)


@pytest.mark.parametrize("weight_decay, max_norm", [(0.0, 1.0), (0.1, 0.05), (0.01, 0.0)])
def test_reference_adamw_equals_torch(weight_decay, max_norm):
    from bert_core.training.reference import adamw_step, clip_by_global_norm, init_state

    rng = np.random.default_rng(0)
    params = {"a.weight": rng.normal(size=(3, 4)).astype(np.float32), "a.bias": rng.normal(size=4).astype(np.float32)}
    decay = {"a.weight": True, "a.bias": False}
    torch_params = {k: torch.nn.Parameter(torch.from_numpy(v.copy())) for k, v in params.items()}
    opt = torch.optim.AdamW(
        [
            {"params": [torch_params["a.weight"]], "weight_decay": weight_decay},
            {"params": [torch_params["a.bias"]], "weight_decay": 0.0},
        ],
        lr=1e-2,
        betas=(0.9, 0.999),
        eps=1e-8,
        foreach=False,
    )
    state = init_state(params)
    for step in range(5):
        grads = {k: rng.normal(size=v.shape).astype(np.float32) for k, v in params.items()}
        lr = 1e-2 * (step + 1) / 5
        for group in opt.param_groups:
            group["lr"] = lr
        for k, p in torch_params.items():
            p.grad = torch.from_numpy(grads[k].copy())
        torch_norm = float(torch.nn.utils.clip_grad_norm_(list(torch_params.values()), max_norm)) if max_norm else None
        opt.step()
        clipped, norm = clip_by_global_norm(grads, max_norm)
        if torch_norm is not None:
            assert norm == pytest.approx(torch_norm, rel=1e-6)
        params, state = adamw_step(params, clipped, state, lr, weight_decay=weight_decay, decay=decay)
    for k, p in torch_params.items():
        np.testing.assert_allclose(
            params[k], p.detach().numpy(), rtol=0, atol=1e-7, err_msg=k
        )  # within 1 ulp (fused kernels)
        np.testing.assert_allclose(state[f"exp_avg/{k}"], opt.state[p]["exp_avg"].numpy(), rtol=0, atol=1e-7)
        np.testing.assert_allclose(state[f"exp_avg_sq/{k}"], opt.state[p]["exp_avg_sq"].numpy(), rtol=0, atol=1e-7)

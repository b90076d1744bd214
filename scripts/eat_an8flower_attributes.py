"""Do EAT's textual explanations name the part colour that defines the class? (an8flower)

    python scripts/eat_an8flower_attributes.py --ckpt outputs/train/runs/<run>/checkpoints/last.ckpt

On an8flower every class is a (part, colour) pair, e.g. "centre: red", and the attribute of the
same name is the only one that tells the class apart. Among the correctly classified test
images, this prints the fraction whose textual explanation (the top-k attributes by EAR
contribution ``s_i = Σ_j ∂c_y/∂E_a[i,j]``, Xu et al., EAT; those predicted present first unless
``method.present_only=false``) contains that attribute, the same for the pure ``s_i`` ranking
over all attributes, a per-class breakdown and a few sentences.
The data is the checkpoint's own (``--test-size`` overrides the split size).
"""

from __future__ import annotations

import argparse
from collections import Counter

import torch

from explainbench.methods.build import load_method, stored_datamodule
from explainbench.metrics.sentence import class_attribute_index


def discriminative_attributes(class_names: list[str], attribute_names: list[str]) -> torch.Tensor:
    """``[R]`` index of the attribute named like each class (an8flower: "centre: red" ...)."""
    index = class_attribute_index(class_names, attribute_names)
    if index is None:
        missing = [c for c in class_names if c not in attribute_names]
        raise SystemExit(
            f"Not an an8flower checkpoint: no attribute is named like the classes {missing[:3]}."
        )
    return index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--ckpt", required=True, help="checkpoint of an `experiment=an8flower_eat` run"
    )
    parser.add_argument(
        "--k",
        type=int,
        default=None,
        help="attributes per explanation (default: the model's top_k)",
    )
    parser.add_argument("--test-size", type=int, default=None, help="override data.test_size")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--examples", type=int, default=3, help="sentences to print")
    args = parser.parse_args()

    model = load_method(args.ckpt)
    if not hasattr(model, "attribute_scores"):
        raise SystemExit(
            f"{args.ckpt} is a {type(model).__name__} checkpoint, not EAT (method=eat)."
        )
    datamodule = stored_datamodule(model, batch_size=args.batch_size, test_size=args.test_size)
    wanted = discriminative_attributes(model.class_names, model.attribute_names)
    k = args.k or model.top_k

    # "sentence": the model's own ranking (present attributes first, by default);
    # "ear": the pure s_i ranking over all attributes
    hits = {"sentence": Counter(), "ear": Counter()}
    correct, total = Counter(), 0
    examples: list[str] = []
    for batch in datamodule.test_dataloader():
        scores, pred, probs = model.attribute_scores(batch["image"])
        label = batch["label"]
        total += label.numel()
        ok = pred == label
        for y in label[ok].tolist():
            correct[y] += 1
        for name, present_only in (("sentence", None), ("ear", False)):
            top = model.top_attributes(scores, probs, k, present_only=present_only)
            named = (top == wanted[label][:, None]).any(dim=1)
            for y, hit in zip(label[ok].tolist(), named[ok].tolist(), strict=True):
                hits[name][y] += hit
            if name == "sentence":
                for i in ok.nonzero().flatten().tolist()[: max(0, args.examples - len(examples))]:
                    examples.append(model.sentence(top[i].tolist(), int(pred[i])))

    n_correct = sum(correct.values())
    print(f"checkpoint: {args.ckpt}")
    print(
        f"test images: {total}, correctly classified: {n_correct} ({n_correct / max(total, 1):.1%})"
    )
    print(f"sentence ranking: {'present attributes first' if model.present_only else 'pure s_i'}")
    print(
        f"| class | correct | part colour in the sentence's top-{k} | in the top-{k} of s_i (all attributes) |"
    )
    print("|---|---|---|---|")
    for y in sorted(correct):
        print(
            f"| {model.class_names[y]} | {correct[y]} | {hits['sentence'][y] / correct[y]:.1%} "
            f"| {hits['ear'][y] / correct[y]:.1%} |"
        )
    for name, what in (
        ("sentence", "the textual explanation"),
        ("ear", "the s_i ranking over all attributes"),
    ):
        n_hits = sum(hits[name].values())
        print(
            f"part-colour attribute in the top-{k} of {what}, correctly classified images: "
            f"{n_hits}/{n_correct} = {n_hits / max(n_correct, 1):.1%}"
        )
    for sentence in examples:
        print(f"  e.g. {sentence}")


if __name__ == "__main__":
    torch.set_grad_enabled(True)
    main()

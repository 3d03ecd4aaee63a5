"""The six trainbench models in PyTorch, with trainbench's parameter names.

The architectures are those of ../shared/peers/torch_anchor.py and src/nn/models.cpp; the
modules are named after trainbench's graph nodes, so that state_dict() keys are exactly the
names trainbench gives its parameters and batch-norm buffers ("layer1.0.conv1.weight",
"stem.bn.running_mean", ...) and weights move between the two without a name map.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv(cin, cout, k, stride, pad, bias):
    return nn.Conv2d(cin, cout, k, stride, pad, bias=bias)


def native_dropout(name, p):
    return nn.Dropout(p)


def simple_cnn(c, h, w, classes, dropout):
    # conv5x5(C->8)-ReLU-maxpool2 -> fc(->10)
    ph, pw = (h - 4) // 2, (w - 4) // 2
    return nn.Sequential(OrderedDict([
        ("conv1", conv(c, 8, 5, 1, 0, True)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc", nn.Linear(8 * ph * pw, classes))]))


def alexnet_lite(c, h, w, classes, dropout):
    ph, pw = h // 2 // 2, w // 2 // 2
    return nn.Sequential(OrderedDict([
        ("conv1", conv(c, 64, 3, 1, 1, True)), ("relu1", nn.ReLU()), ("pool1", nn.MaxPool2d(2)),
        ("conv2", conv(64, 128, 3, 1, 1, True)), ("relu2", nn.ReLU()), ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(128 * ph * pw, 512)), ("relu3", nn.ReLU()),
        ("fc2", nn.Linear(512, classes))]))


def cifar_cnn(c, h, w, classes, dropout):
    def block(prefix, cin, width):
        return nn.Sequential(OrderedDict([
            ("conv1", conv(cin, width, 3, 1, 1, True)), ("relu1", nn.ReLU()),
            ("bn1", nn.BatchNorm2d(width)), ("conv2", conv(width, width, 3, 1, 1, True)),
            ("relu2", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
            ("dropout", dropout(prefix + ".dropout", 0.25))]))
    ph, pw = h // 2 // 2, w // 2 // 2
    return nn.Sequential(OrderedDict([
        ("block1", block("block1", c, 32)), ("block2", block("block2", 32, 64)),
        ("flatten", nn.Flatten()), ("fc1", nn.Linear(64 * ph * pw, 512)), ("relu", nn.ReLU()),
        ("bn", nn.BatchNorm1d(512)), ("dropout", dropout("dropout", 0.5)),
        ("fc2", nn.Linear(512, classes))]))


class ConvBN(nn.Module):
    """The projection shortcut: 1x1 conv (stride s) + BN, named conv and bn."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv = conv(cin, cout, 1, stride, 0, False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return self.bn(self.conv(x))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = conv(cin, width, 3, stride, 1, False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv(width, width, 3, 1, 1, False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = ConvBN(cin, width, stride) if stride != 1 or cin != width else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin, width, stride):
        super().__init__()
        self.conv1 = conv(cin, width, 1, 1, 0, False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv(width, width, 3, stride, 1, False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv(width, width * 4, 1, 1, 0, False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        out = width * 4
        self.shortcut = ConvBN(cin, out, stride) if stride != 1 or cin != out else None

    def forward(self, x):
        y = F.relu(self.bn1(self.conv1(x)))
        y = F.relu(self.bn2(self.conv2(y)))
        y = self.bn3(self.conv3(y))
        return F.relu(y + (self.shortcut(x) if self.shortcut is not None else x))


class Stem(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = conv(c, 64, 3, 1, 1, False)
        self.bn = nn.BatchNorm2d(64)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


class ResNet(nn.Module):
    """CIFAR-style: 3x3 stem, no max-pool, stages 64/128/256/512, global average pool, fc."""

    def __init__(self, c, classes, block, counts):
        super().__init__()
        self.stem = Stem(c)
        channels = 64
        for stage, (width, count) in enumerate(zip((64, 128, 256, 512), counts)):
            blocks = []
            for b in range(count):
                blocks.append(block(channels, width, 2 if stage > 0 and b == 0 else 1))
                channels = width * block.expansion
            setattr(self, f"layer{stage + 1}", nn.Sequential(*blocks))
        self.fc = nn.Linear(channels, classes)

    def forward(self, x):
        x = self.stem(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


BUILDERS = {
    "simple_cnn": simple_cnn,
    "alexnet_lite": alexnet_lite,
    "cifar_cnn": cifar_cnn,
    "resnet18": lambda c, h, w, k, d: ResNet(c, k, BasicBlock, (2, 2, 2, 2)),
    "resnet34": lambda c, h, w, k, d: ResNet(c, k, BasicBlock, (3, 4, 6, 3)),
    "resnet50": lambda c, h, w, k, d: ResNet(c, k, Bottleneck, (3, 4, 6, 3)),
}


def build(name, channels, height, width, classes=10, dropout=native_dropout):
    """The model `name` for [channels, height, width] inputs. dropout(name, p) makes each
    dropout layer (nn.Dropout by default; golden.py passes trainbench's masks)."""
    if name not in BUILDERS:
        raise ValueError(f"unknown model '{name}' (known: {', '.join(BUILDERS)})")
    return BUILDERS[name](channels, height, width, classes, dropout)


def weight_names(model):
    """The tensors a weights file holds for this model in trainbench's order: parameters, then
    batch-norm running statistics (num_batches_tracked is PyTorch's own and not kept)."""
    return ([k for k, _ in model.named_parameters()] +
            [k for k, _ in model.named_buffers() if not k.endswith("num_batches_tracked")])


def load_weights(model, tensors, path):
    """Copies a weights file's tensors (name -> numpy array) into the model. Every tensor the
    model has must be present with the same shape; raises ValueError naming the first that is
    missing or differs, and any the file has that the model lacks."""
    state = model.state_dict()
    wanted = weight_names(model)
    missing = [k for k in wanted if k not in tensors]
    extra = [k for k in tensors if k not in state]
    if missing or extra:
        raise ValueError(f"{path}: tensors do not match the model (missing {missing[:5]}, "
                         f"unexpected {extra[:5]})")
    with torch.no_grad():
        for k in wanted:
            src = torch.from_numpy(tensors[k])
            if tuple(src.shape) != tuple(state[k].shape):
                raise ValueError(f"{path}: tensor '{k}' is {tuple(src.shape)}, the model needs "
                                 f"{tuple(state[k].shape)}")
            state[k].copy_(src.to(state[k].dtype))


def weights_of(model):
    """(name, float32 numpy array) pairs for a weights file, in trainbench's order."""
    state = model.state_dict()
    return [(k, state[k].detach().float().cpu().numpy()) for k in weight_names(model)]

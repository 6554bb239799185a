"""The cluster files parse as their tools read them: the launcher YAML through Ray's own config checks, the RayJob
manifest with the fields KubeRay needs, and every `fusion-sweep run` command they (and the README) hold through
our own parser."""
from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest
import yaml

CLUSTER = Path(__file__).resolve().parents[2] / "sweep" / "tune" / "cluster"
LAUNCHER, RAYJOB, README = CLUSTER / "cluster.yaml", CLUSTER / "rayjob.yaml", CLUSTER / "README.md"


def _parse_run(command: str):
    """The SweepConfig a `fusion-sweep run ...` command line builds (its flags checked by the real parser)."""
    from sweep.commands.run import add_arguments, build_sweep

    words = [word for word in shlex.split(command) if word != "..."]  # "..." in a README: "your other flags"
    words = words[words.index("run") + 1:]
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    args = parser.parse_args(words)
    return args, build_sweep(args)


def test_the_launcher_yaml_passes_rays_own_prepare_and_validate():
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = yaml.safe_load(LAUNCHER.read_text())
    prepared = prepare_config(config)
    validate_config(prepared)  # jsonschema against Ray's ray-schema.json; raises on any unknown or bad field
    assert prepared["head_node_type"] in prepared["available_node_types"]
    workers = [t for name, t in prepared["available_node_types"].items() if name != prepared["head_node_type"]]
    assert workers and all(t["resources"].get("GPU", 0) >= 1 for t in workers)


def test_the_launcher_keeps_rays_ports_closed():
    config = yaml.safe_load(LAUNCHER.read_text())
    opened = config["provider"]["security_group"]["IpPermissions"]
    assert [(rule["FromPort"], rule["ToPort"]) for rule in opened] == [(22, 22)]  # SSH only
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in head


def test_the_rayjob_manifest_has_what_kuberay_needs():
    job = yaml.safe_load(RAYJOB.read_text())
    assert job["apiVersion"] == "ray.io/v1" and job["kind"] == "RayJob" and job["metadata"]["name"]
    spec = job["spec"]
    assert isinstance(spec["entrypoint"], str) and spec["entrypoint"].startswith("fusion-sweep run")
    cluster = spec["rayClusterSpec"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", cluster["rayVersion"])
    groups = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for group in groups:
        assert isinstance(group["rayStartParams"], dict)
        assert all(isinstance(v, str) for v in group["rayStartParams"].values())  # KubeRay wants strings
        containers = group["template"]["spec"]["containers"]
        assert containers and all(c["name"] and c["image"] for c in containers)
        limits = containers[0]["resources"]["limits"]
        assert {"cpu", "memory"} <= set(limits), limits
        volumes = {v["name"] for v in group["template"]["spec"].get("volumes", [])}
        assert {m["name"] for c in containers for m in c.get("volumeMounts", [])} <= volumes
    for worker in cluster["workerGroupSpecs"]:
        assert worker["groupName"] and worker["minReplicas"] <= worker["replicas"] <= worker["maxReplicas"]
        assert int(worker["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"]) >= 1


def test_the_rayjob_entrypoint_is_a_valid_sweep_on_the_shared_volumes():
    job = yaml.safe_load(RAYJOB.read_text())
    args, sweep = _parse_run(job["spec"]["entrypoint"])
    assert args.address == "auto" and sweep.name == "paper"
    mounts = {m["mountPath"] for c in job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]["containers"]
              for m in c["volumeMounts"]}
    assert any(args.out.startswith(path + "/") for path in mounts), (args.out, mounts)
    assert any(sweep.train.data.data_dir.startswith(path + "/") for path in mounts)


def test_every_run_command_in_the_cluster_readme_parses():
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", README.read_text(), flags=re.S)
    lines = [line for block in blocks for line in block.replace("\\\n", " ").splitlines()]
    commands = [line[line.index("fusion-sweep run"):].split("  #")[0] for line in lines if "fusion-sweep run" in line]
    assert commands, "the README shows no `fusion-sweep run` command line"
    for command in commands:
        args, _ = _parse_run(command)
        assert args.address == "auto"


@pytest.mark.parametrize("path", [LAUNCHER, RAYJOB])
def test_the_readme_shows_the_one_command_that_launches_each_file(path):
    relative = path.relative_to(CLUSTER.parents[2]).as_posix()
    text = README.read_text()
    assert f"ray up {relative}" in text or f"kubectl apply -f {relative}" in text

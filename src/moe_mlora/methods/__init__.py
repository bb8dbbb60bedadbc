"""Multi-domain methods as plugins: each one file, registered in moe_mlora.methods.registry."""

from moe_mlora.methods.method import JOINT_PHASE, Method
from moe_mlora.methods.registry import METHODS, PAPER_METHODS, arm_title, get_method, method_title

__all__ = ["JOINT_PHASE", "METHODS", "Method", "PAPER_METHODS", "arm_title", "get_method", "method_title"]

"""DNN: the flattened embeddings (and dense features) through the MLP tower, no interaction layer and no
linear term: WDL's deep part alone, the backbone the multi-domain literature publishes its methods on
(Scenario-Wise Rec's models are MLPs)."""

from moe_mlora.models.wdl import WDL


class DNN(WDL):
    name = "dnn"
    uses_linear_term = False

from .modeling_trm import TRMForImageClassification, TRMModel, TRMPreTrainedModel
from .outputs import TRMModelOutput

__all__ = ["TRMModel", "TRMForImageClassification", "TRMPreTrainedModel", "TRMModelOutput"]

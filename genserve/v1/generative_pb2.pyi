from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DataType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DATA_TYPE_UNSPECIFIED: _ClassVar[DataType]
    DATA_TYPE_UINT8: _ClassVar[DataType]
    DATA_TYPE_FLOAT32: _ClassVar[DataType]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_UINT8: _ClassVar[ImageFormat]
    IMAGE_FORMAT_FLOAT32: _ClassVar[ImageFormat]
DATA_TYPE_UNSPECIFIED: DataType
DATA_TYPE_UINT8: DataType
DATA_TYPE_FLOAT32: DataType
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_UINT8: ImageFormat
IMAGE_FORMAT_FLOAT32: ImageFormat

class Tensor(_message.Message):
    __slots__ = ("dtype", "shape", "data")
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    dtype: DataType
    shape: _containers.RepeatedScalarFieldContainer[int]
    data: bytes
    def __init__(self, dtype: _Optional[_Union[DataType, str]] = ..., shape: _Optional[_Iterable[int]] = ..., data: _Optional[bytes] = ...) -> None: ...

class EncodeRequest(_message.Message):
    __slots__ = ("images", "seed", "version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    seed: int
    version: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., seed: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class EncodeResponse(_message.Message):
    __slots__ = ("z_mean", "z_log_var", "z", "model")
    Z_MEAN_FIELD_NUMBER: _ClassVar[int]
    Z_LOG_VAR_FIELD_NUMBER: _ClassVar[int]
    Z_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    z_mean: Tensor
    z_log_var: Tensor
    z: Tensor
    model: ModelRef
    def __init__(self, z_mean: _Optional[_Union[Tensor, _Mapping]] = ..., z_log_var: _Optional[_Union[Tensor, _Mapping]] = ..., z: _Optional[_Union[Tensor, _Mapping]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class DecodeRequest(_message.Message):
    __slots__ = ("z", "image_format", "version")
    Z_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    z: Tensor
    image_format: ImageFormat
    version: int
    def __init__(self, z: _Optional[_Union[Tensor, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class SampleRequest(_message.Message):
    __slots__ = ("n", "model", "seed", "image_format", "version", "digit", "digits", "return_latents", "truncation", "min_confidence")
    N_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    RETURN_LATENTS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    n: int
    model: str
    seed: int
    image_format: ImageFormat
    version: int
    digit: int
    digits: _containers.RepeatedScalarFieldContainer[int]
    return_latents: bool
    truncation: float
    min_confidence: float
    def __init__(self, n: _Optional[int] = ..., model: _Optional[str] = ..., seed: _Optional[int] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ..., digit: _Optional[int] = ..., digits: _Optional[_Iterable[int]] = ..., return_latents: bool = ..., truncation: _Optional[float] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class SampleStreamRequest(_message.Message):
    __slots__ = ("n", "model", "seed", "digit", "balanced", "chunk", "start_index", "image_format", "version", "truncation", "min_confidence")
    N_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    BALANCED_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    START_INDEX_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TRUNCATION_FIELD_NUMBER: _ClassVar[int]
    MIN_CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    n: int
    model: str
    seed: int
    digit: int
    balanced: bool
    chunk: int
    start_index: int
    image_format: ImageFormat
    version: int
    truncation: float
    min_confidence: float
    def __init__(self, n: _Optional[int] = ..., model: _Optional[str] = ..., seed: _Optional[int] = ..., digit: _Optional[int] = ..., balanced: bool = ..., chunk: _Optional[int] = ..., start_index: _Optional[int] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ..., truncation: _Optional[float] = ..., min_confidence: _Optional[float] = ...) -> None: ...

class SampleChunk(_message.Message):
    __slots__ = ("images", "digits", "first_index", "model", "seed", "redrawn", "unmet")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    FIRST_INDEX_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    REDRAWN_FIELD_NUMBER: _ClassVar[int]
    UNMET_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    digits: _containers.RepeatedScalarFieldContainer[int]
    first_index: int
    model: ModelRef
    seed: int
    redrawn: int
    unmet: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., digits: _Optional[_Iterable[int]] = ..., first_index: _Optional[int] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., seed: _Optional[int] = ..., redrawn: _Optional[int] = ..., unmet: _Optional[int] = ...) -> None: ...

class Endpoint(_message.Message):
    __slots__ = ("image", "latent", "seed")
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    LATENT_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    image: Tensor
    latent: Tensor
    seed: int
    def __init__(self, image: _Optional[_Union[Tensor, _Mapping]] = ..., latent: _Optional[_Union[Tensor, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class InterpolateRequest(_message.Message):
    __slots__ = ("model", "start", "end", "steps", "digit", "image_format", "version")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    model: str
    start: Endpoint
    end: Endpoint
    steps: int
    digit: int
    image_format: ImageFormat
    version: int
    def __init__(self, model: _Optional[str] = ..., start: _Optional[_Union[Endpoint, _Mapping]] = ..., end: _Optional[_Union[Endpoint, _Mapping]] = ..., steps: _Optional[int] = ..., digit: _Optional[int] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class LatentGridRequest(_message.Message):
    __slots__ = ("size", "span", "digit", "image_format", "version")
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    size: int
    span: float
    digit: int
    image_format: ImageFormat
    version: int
    def __init__(self, size: _Optional[int] = ..., span: _Optional[float] = ..., digit: _Optional[int] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class ReconstructRequest(_message.Message):
    __slots__ = ("images", "image_format", "version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    image_format: ImageFormat
    version: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class RestyleRequest(_message.Message):
    __slots__ = ("images", "digit", "source_digits", "image_format", "version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    DIGIT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_DIGITS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    digit: int
    source_digits: _containers.RepeatedScalarFieldContainer[int]
    image_format: ImageFormat
    version: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., digit: _Optional[int] = ..., source_digits: _Optional[_Iterable[int]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class ClassifyRequest(_message.Message):
    __slots__ = ("images", "version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    version: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., version: _Optional[int] = ...) -> None: ...

class ClassifyResponse(_message.Message):
    __slots__ = ("probabilities", "digits", "model")
    PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    DIGITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    probabilities: Tensor
    digits: _containers.RepeatedScalarFieldContainer[int]
    model: ModelRef
    def __init__(self, probabilities: _Optional[_Union[Tensor, _Mapping]] = ..., digits: _Optional[_Iterable[int]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ...) -> None: ...

class DenoiseRequest(_message.Message):
    __slots__ = ("images", "image_format", "version")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FORMAT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    image_format: ImageFormat
    version: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., image_format: _Optional[_Union[ImageFormat, str]] = ..., version: _Optional[int] = ...) -> None: ...

class ImagesResponse(_message.Message):
    __slots__ = ("images", "model", "seed", "latents", "redrawn", "unmet")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    LATENTS_FIELD_NUMBER: _ClassVar[int]
    REDRAWN_FIELD_NUMBER: _ClassVar[int]
    UNMET_FIELD_NUMBER: _ClassVar[int]
    images: Tensor
    model: ModelRef
    seed: int
    latents: Tensor
    redrawn: int
    unmet: int
    def __init__(self, images: _Optional[_Union[Tensor, _Mapping]] = ..., model: _Optional[_Union[ModelRef, _Mapping]] = ..., seed: _Optional[int] = ..., latents: _Optional[_Union[Tensor, _Mapping]] = ..., redrawn: _Optional[int] = ..., unmet: _Optional[int] = ...) -> None: ...

class ModelRef(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TensorInfo(_message.Message):
    __slots__ = ("name", "dtype", "shape", "description")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    SHAPE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    dtype: str
    shape: _containers.RepeatedScalarFieldContainer[str]
    description: str
    def __init__(self, name: _Optional[str] = ..., dtype: _Optional[str] = ..., shape: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ...) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "version", "inputs", "outputs", "execution_provider", "sha256", "metrics", "role", "serving")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUTS_FIELD_NUMBER: _ClassVar[int]
    EXECUTION_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    SERVING_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: int
    inputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    outputs: _containers.RepeatedCompositeFieldContainer[TensorInfo]
    execution_provider: str
    sha256: str
    metrics: _struct_pb2.Struct
    role: str
    serving: ServingSettings
    def __init__(self, name: _Optional[str] = ..., version: _Optional[int] = ..., inputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., outputs: _Optional[_Iterable[_Union[TensorInfo, _Mapping]]] = ..., execution_provider: _Optional[str] = ..., sha256: _Optional[str] = ..., metrics: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., role: _Optional[str] = ..., serving: _Optional[_Union[ServingSettings, _Mapping]] = ...) -> None: ...

class ServingSettings(_message.Message):
    __slots__ = ("max_batch_size", "max_queue_delay_us", "max_gather_us", "instances")
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_QUEUE_DELAY_US_FIELD_NUMBER: _ClassVar[int]
    MAX_GATHER_US_FIELD_NUMBER: _ClassVar[int]
    INSTANCES_FIELD_NUMBER: _ClassVar[int]
    max_batch_size: int
    max_queue_delay_us: int
    max_gather_us: int
    instances: int
    def __init__(self, max_batch_size: _Optional[int] = ..., max_queue_delay_us: _Optional[int] = ..., max_gather_us: _Optional[int] = ..., instances: _Optional[int] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

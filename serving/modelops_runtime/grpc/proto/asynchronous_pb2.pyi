from modelops_runtime.grpc.proto import inference_pb2 as _inference_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AsyncSubmitRequest(_message.Message):
    __slots__ = ("request", "wait_seconds")
    REQUEST_FIELD_NUMBER: _ClassVar[int]
    WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    request: _inference_pb2.ModelInferRequest
    wait_seconds: int
    def __init__(self, request: _Optional[_Union[_inference_pb2.ModelInferRequest, _Mapping]] = ..., wait_seconds: _Optional[int] = ...) -> None: ...

class AsyncFetchRequest(_message.Message):
    __slots__ = ("model_name", "id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    id: str
    def __init__(self, model_name: _Optional[str] = ..., id: _Optional[str] = ...) -> None: ...

class AsyncResult(_message.Message):
    __slots__ = ("id", "model_name", "model_version", "status", "response", "error")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_VERSION_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    id: str
    model_name: str
    model_version: str
    status: str
    response: _inference_pb2.ModelInferResponse
    error: str
    def __init__(self, id: _Optional[str] = ..., model_name: _Optional[str] = ..., model_version: _Optional[str] = ..., status: _Optional[str] = ..., response: _Optional[_Union[_inference_pb2.ModelInferResponse, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

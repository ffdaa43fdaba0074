"""TF Serving's gRPC messages, defined here so that the gRPC client needs only protobuf.

The messages have TensorFlow Serving's package names, message names and field numbers, so they
are the same bytes on the wire, but only the fields a headswitch client reads or writes: a
field this module leaves out (``TensorProto.variant_val``, ``SignatureDef.defaults``, ...) is
kept as an unknown field when parsed and written back unchanged.

They live in a private descriptor pool: ``tensorflow-serving-api`` registers the same full
names in protobuf's default pool, and both may be imported in one process (an embedded server
and a client in one test run). tests/client/test_protos.py checks every field against
``tensorflow-serving-api`` and the bytes both ways.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import any_pb2, descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

from headswitch.contract import STATUS_CODES

_F = descriptor_pb2.FieldDescriptorProto
_OPTIONAL, _REPEATED = _F.LABEL_OPTIONAL, _F.LABEL_REPEATED
_SCALARS = {
    "string": _F.TYPE_STRING, "bytes": _F.TYPE_BYTES, "bool": _F.TYPE_BOOL,
    "int32": _F.TYPE_INT32, "int64": _F.TYPE_INT64, "uint32": _F.TYPE_UINT32,
    "uint64": _F.TYPE_UINT64, "float": _F.TYPE_FLOAT, "double": _F.TYPE_DOUBLE,
}

# tensorflow.DataType: the value types, then each one's reference type at +100.
_DATA_TYPES = (
    "INVALID", "FLOAT", "DOUBLE", "INT32", "UINT8", "INT16", "INT8", "STRING", "COMPLEX64",
    "INT64", "BOOL", "QINT8", "QUINT8", "QINT32", "BFLOAT16", "QINT16", "QUINT16", "UINT16",
    "COMPLEX128", "HALF", "RESOURCE", "VARIANT", "UINT32", "UINT64", "FLOAT8_E5M2",
    "FLOAT8_E4M3FN", "FLOAT8_E4M3FNUZ", "FLOAT8_E4M3B11FNUZ", "FLOAT8_E5M2FNUZ", "INT4", "UINT4",
)

# message -> [(name, number, type, label, oneof)]; a type is a scalar name, a message's full
# name, "enum " and an enum's full name, or "map<key, value>".
_Field = tuple[str, int, str, int, str | None]


def _fields(*spec: tuple[Any, ...]) -> list[_Field]:
    out: list[_Field] = []
    for entry in spec:
        name, number, kind = entry[:3]
        label = entry[3] if len(entry) > 3 else _OPTIONAL
        oneof = entry[4] if len(entry) > 4 else None
        out.append((name, number, kind, label, oneof))
    return out


_TENSORFLOW: dict[str, list[_Field]] = {
    "TensorShapeProto.Dim": _fields(("size", 1, "int64"), ("name", 2, "string")),
    "TensorShapeProto": _fields(("dim", 2, ".tensorflow.TensorShapeProto.Dim", _REPEATED),
                                ("unknown_rank", 3, "bool")),
    "TensorProto": _fields(
        ("dtype", 1, "enum .tensorflow.DataType"),
        ("tensor_shape", 2, ".tensorflow.TensorShapeProto"),
        ("version_number", 3, "int32"),
        ("tensor_content", 4, "bytes"),
        ("float_val", 5, "float", _REPEATED),
        ("double_val", 6, "double", _REPEATED),
        ("int_val", 7, "int32", _REPEATED),
        ("string_val", 8, "bytes", _REPEATED),
        ("scomplex_val", 9, "float", _REPEATED),
        ("int64_val", 10, "int64", _REPEATED),
        ("bool_val", 11, "bool", _REPEATED),
        ("dcomplex_val", 12, "double", _REPEATED),
        ("half_val", 13, "int32", _REPEATED),
        ("uint32_val", 16, "uint32", _REPEATED),
        ("uint64_val", 17, "uint64", _REPEATED),
    ),
    "TensorInfo": _fields(
        ("name", 1, "string", _OPTIONAL, "encoding"),
        ("dtype", 2, "enum .tensorflow.DataType"),
        ("tensor_shape", 3, ".tensorflow.TensorShapeProto"),
    ),
    "SignatureDef": _fields(
        ("inputs", 1, "map<string, .tensorflow.TensorInfo>"),
        ("outputs", 2, "map<string, .tensorflow.TensorInfo>"),
        ("method_name", 3, "string"),
    ),
}

_SERVING: dict[str, list[_Field]] = {
    "ModelSpec": _fields(
        ("name", 1, "string"),
        ("version", 2, ".google.protobuf.Int64Value", _OPTIONAL, "version_choice"),
        ("version_label", 4, "string", _OPTIONAL, "version_choice"),
        ("signature_name", 3, "string"),
    ),
    "PredictRequest": _fields(
        ("model_spec", 1, ".tensorflow.serving.ModelSpec"),
        ("inputs", 2, "map<string, .tensorflow.TensorProto>"),
        ("output_filter", 3, "string", _REPEATED),
    ),
    "PredictResponse": _fields(
        ("model_spec", 2, ".tensorflow.serving.ModelSpec"),
        ("outputs", 1, "map<string, .tensorflow.TensorProto>"),
    ),
    "SignatureDefMap": _fields(("signature_def", 1, "map<string, .tensorflow.SignatureDef>")),
    "GetModelMetadataRequest": _fields(
        ("model_spec", 1, ".tensorflow.serving.ModelSpec"),
        ("metadata_field", 2, "string", _REPEATED),
    ),
    "GetModelMetadataResponse": _fields(
        ("model_spec", 1, ".tensorflow.serving.ModelSpec"),
        ("metadata", 2, "map<string, .google.protobuf.Any>"),
    ),
    "StatusProto": _fields(("error_code", 1, "enum .tensorflow.error.Code"),
                           ("error_message", 2, "string")),
    "GetModelStatusRequest": _fields(("model_spec", 1, ".tensorflow.serving.ModelSpec")),
    "ModelVersionStatus": _fields(
        ("version", 1, "int64"),
        ("state", 2, "enum .tensorflow.serving.ModelVersionStatus.State"),
        ("status", 3, ".tensorflow.serving.StatusProto"),
    ),
    "GetModelStatusResponse": _fields(
        ("model_version_status", 1, ".tensorflow.serving.ModelVersionStatus", _REPEATED)),
}

_VERSION_STATES = (("UNKNOWN", 0), ("START", 10), ("LOADING", 20), ("AVAILABLE", 30),
                   ("UNLOADING", 40), ("END", 50))


def _message(file: Any, path: str) -> Any:
    """The DescriptorProto for ``path`` ("Outer.Inner") in ``file``, created if missing."""
    container, message = file.message_type, None
    for part in path.split("."):
        message = next((m for m in container if m.name == part), None) or container.add(name=part)
        container = message.nested_type
    return message


def _add_field(file: Any, package: str, owner: str, spec: _Field) -> None:
    name, number, kind, label, oneof = spec
    message = _message(file, owner)
    field = message.field.add(name=name, number=number, label=label)
    if oneof is not None:
        names = [o.name for o in message.oneof_decl]
        if oneof not in names:
            message.oneof_decl.add(name=oneof)
            names.append(oneof)
        field.oneof_index = names.index(oneof)
    if kind in _SCALARS:
        field.type = _SCALARS[kind]
        if label == _REPEATED and kind not in ("string", "bytes"):
            field.options.packed = True
        return
    if kind.startswith("map<"):
        key, value = (k.strip() for k in kind[4:-1].split(","))
        entry_name = "".join(p.capitalize() for p in name.split("_")) + "Entry"
        entry = message.nested_type.add(name=entry_name)
        entry.options.map_entry = True
        entry.field.add(name="key", number=1, label=_OPTIONAL, type=_SCALARS[key])
        entry.field.add(name="value", number=2, label=_OPTIONAL, type=_F.TYPE_MESSAGE,
                        type_name=value)
        field.label = _REPEATED
        field.type = _F.TYPE_MESSAGE
        field.type_name = f".{package}.{owner}.{entry_name}"
        return
    enum = kind.startswith("enum ")
    field.type = _F.TYPE_ENUM if enum else _F.TYPE_MESSAGE
    field.type_name = kind.removeprefix("enum ")


def _file(name: str, package: str, dependencies: list[str]) -> Any:
    return descriptor_pb2.FileDescriptorProto(name=name, package=package, syntax="proto3",
                                              dependency=dependencies)


def _build_pool() -> Any:
    pool = descriptor_pool.DescriptorPool()
    for well_known in (wrappers_pb2, any_pb2):
        pool.Add(descriptor_pb2.FileDescriptorProto.FromString(well_known.DESCRIPTOR.serialized_pb))

    errors = _file("headswitch/client/tensorflow_error.proto", "tensorflow.error", [])
    code = errors.enum_type.add(name="Code")
    for number, code_name in enumerate(STATUS_CODES):
        code.value.add(name=code_name, number=number)
    pool.Add(errors)

    tensorflow = _file("headswitch/client/tensorflow.proto", "tensorflow", [])
    data_type = tensorflow.enum_type.add(name="DataType")
    for number, type_name in enumerate(_DATA_TYPES):
        data_type.value.add(name=f"DT_{type_name}", number=number)
    for number, type_name in enumerate(_DATA_TYPES[1:], 101):
        data_type.value.add(name=f"DT_{type_name}_REF", number=number)
    for owner, fields in _TENSORFLOW.items():
        for spec in fields:
            _add_field(tensorflow, "tensorflow", owner, spec)
    pool.Add(tensorflow)

    serving = _file("headswitch/client/tensorflow_serving.proto", "tensorflow.serving", [
        "google/protobuf/wrappers.proto", "google/protobuf/any.proto", errors.name,
        tensorflow.name])
    for owner, fields in _SERVING.items():
        for spec in fields:
            _add_field(serving, "tensorflow.serving", owner, spec)
    state = _message(serving, "ModelVersionStatus").enum_type.add(
        name="State")
    for state_name, number in _VERSION_STATES:
        state.value.add(name=state_name, number=number)
    pool.Add(serving)
    return pool


POOL = _build_pool()


def _class(full_name: str) -> Any:
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName(full_name))


ModelSpec = _class("tensorflow.serving.ModelSpec")
PredictRequest = _class("tensorflow.serving.PredictRequest")
PredictResponse = _class("tensorflow.serving.PredictResponse")
SignatureDefMap = _class("tensorflow.serving.SignatureDefMap")
GetModelMetadataRequest = _class("tensorflow.serving.GetModelMetadataRequest")
GetModelMetadataResponse = _class("tensorflow.serving.GetModelMetadataResponse")
GetModelStatusRequest = _class("tensorflow.serving.GetModelStatusRequest")
GetModelStatusResponse = _class("tensorflow.serving.GetModelStatusResponse")

DataType = POOL.FindEnumTypeByName("tensorflow.DataType")
DT_FLOAT = DataType.values_by_name["DT_FLOAT"].number
DT_DOUBLE = DataType.values_by_name["DT_DOUBLE"].number
DT_INT32 = DataType.values_by_name["DT_INT32"].number
DT_INT64 = DataType.values_by_name["DT_INT64"].number
DT_STRING = DataType.values_by_name["DT_STRING"].number


def data_type_name(number: int) -> str:
    value = DataType.values_by_number.get(number)
    return str(value.name) if value is not None else f"DataType({number})"


# gRPC method paths and the message types they carry.
PREDICT = ("/tensorflow.serving.PredictionService/Predict", PredictRequest, PredictResponse)
GET_MODEL_METADATA = ("/tensorflow.serving.PredictionService/GetModelMetadata",
                      GetModelMetadataRequest, GetModelMetadataResponse)
GET_MODEL_STATUS = ("/tensorflow.serving.ModelService/GetModelStatus", GetModelStatusRequest,
                    GetModelStatusResponse)

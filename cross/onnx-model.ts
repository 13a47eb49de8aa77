/**
 * A tiny ONNX regressor for the tests: two trees of an ai.onnx.ml TreeEnsembleRegressor, the
 * operator herd's forecast exports to. Encoded with protobufjs from the part of onnx.proto it
 * needs (field numbers as in onnx/onnx.proto), so no Python or model file is involved.
 *
 *   tree 0: x0 <= 0.5 ? 1 : (x1 <= 2 ? 2 : 3)      tree 1: always 0.25      Y = sum
 */
import protobuf from 'protobufjs';

const ONNX_SUBSET = `
syntax = "proto2";
package onnx;
message AttributeProto {
  optional string name = 1; optional float f = 2; optional int64 i = 3; optional bytes s = 4;
  repeated float floats = 7; repeated int64 ints = 8; repeated bytes strings = 9; optional int32 type = 20;
}
message NodeProto { repeated string input = 1; repeated string output = 2; optional string name = 3; optional string op_type = 4; repeated AttributeProto attribute = 5; optional string domain = 7; }
message TensorShapeProto { message Dimension { optional int64 dim_value = 1; optional string dim_param = 2; } repeated Dimension dim = 1; }
message TypeProto { message Tensor { optional int32 elem_type = 1; optional TensorShapeProto shape = 2; } optional Tensor tensor_type = 1; }
message ValueInfoProto { optional string name = 1; optional TypeProto type = 2; }
message GraphProto { repeated NodeProto node = 1; optional string name = 2; repeated ValueInfoProto input = 11; repeated ValueInfoProto output = 12; }
message OperatorSetIdProto { optional string domain = 1; optional int64 version = 2; }
message ModelProto { optional int64 ir_version = 1; optional string producer_name = 2; optional GraphProto graph = 7; repeated OperatorSetIdProto opset_import = 8; }
`;

const INT = 2;
const FLOATS = 6;
const INTS = 7;
const STRINGS = 8;
const STRING = 3;

const ints = (name: string, v: number[]) => ({ name, type: INTS, ints: v });
const floats = (name: string, v: number[]) => ({ name, type: FLOATS, floats: v });
const strings = (name: string, v: string[]) => ({ name, type: STRINGS, strings: v.map((s) => Buffer.from(s)) });

/** Expected output of treeModel() for an input row [x0, x1]. */
export function treeModelExpected(x0: number, x1: number): number {
  return (x0 <= 0.5 ? 1 : x1 <= 2 ? 2 : 3) + 0.25;
}

export function treeModel(): Uint8Array {
  const root = protobuf.parse(ONNX_SUBSET, { keepCase: true }).root;
  const Model = root.lookupType('onnx.ModelProto');
  const tensor = (name: string, dims: Array<number | string>) => ({
    name,
    type: { tensor_type: { elem_type: 1, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } },
  });
  // tree 0: node 0 branch on x0, node 1 leaf, node 2 branch on x1, nodes 3 and 4 leaves; tree 1: node 0 leaf
  const node = {
    input: ['X'], output: ['Y'], name: 'trees', op_type: 'TreeEnsembleRegressor', domain: 'ai.onnx.ml',
    attribute: [
      { name: 'n_targets', type: INT, i: 1 },
      ints('nodes_treeids', [0, 0, 0, 0, 0, 1]),
      ints('nodes_nodeids', [0, 1, 2, 3, 4, 0]),
      ints('nodes_featureids', [0, 0, 1, 0, 0, 0]),
      floats('nodes_values', [0.5, 0, 2, 0, 0, 0]),
      strings('nodes_modes', ['BRANCH_LEQ', 'LEAF', 'BRANCH_LEQ', 'LEAF', 'LEAF', 'LEAF']),
      ints('nodes_truenodeids', [1, 0, 3, 0, 0, 0]),
      ints('nodes_falsenodeids', [2, 0, 4, 0, 0, 0]),
      ints('target_treeids', [0, 0, 0, 1]),
      ints('target_nodeids', [1, 3, 4, 0]),
      ints('target_ids', [0, 0, 0, 0]),
      floats('target_weights', [1, 2, 3, 0.25]),
      { name: 'post_transform', type: STRING, s: Buffer.from('NONE') },
      { name: 'aggregate_function', type: STRING, s: Buffer.from('SUM') },
    ],
  };
  const model = {
    ir_version: 8,
    producer_name: 'herd-tests',
    opset_import: [{ domain: '', version: 13 }, { domain: 'ai.onnx.ml', version: 3 }],
    graph: { name: 'trees', node: [node], input: [tensor('X', ['N', 2])], output: [tensor('Y', ['N', 1])] },
  };
  const err = Model.verify(model);
  if (err) throw new Error(`onnx model: ${err}`);
  return Model.encode(Model.fromObject(model)).finish();
}

/** One state-changing admin call as the audit trail keeps it: made on any node, kept by the coordinator. */
export interface AuditEvent {
  at_ms: number;
  who: string;
  method: string;
  request_json: string;
  code: number;
  details: string;
  node_id: string;
}

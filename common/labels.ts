/** Container and node labels with a meaning to Herd, read by both roles. */

/** On a node: "true" while the node is draining (no migrations to it; moving off it is the point). */
export const DRAINING_LABEL = 'herd.draining';

export const isDraining = (labels: Array<{ key: string; value: string }>) => labels.some((l) => l.key === DRAINING_LABEL && l.value === 'true');

/** On a container: any value but "" or "false" pins it to its node (the controller never moves it). */
export const PIN_LABEL = 'herd.pin';

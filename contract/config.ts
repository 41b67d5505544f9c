/**
 * The version every router and CLI of this build reports. Launch options are declared by their subsystems
 * (daemon/options.ts).
 */
export const VERSION = '0.1.0';

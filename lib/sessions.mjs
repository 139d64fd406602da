import cjs from './sessions.js'

export const { createSessions, Sessions } = cjs

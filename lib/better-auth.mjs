import cjs from './better-auth.js'

export const { redisStorage } = cjs
export default cjs.redisStorage

import cjs from './lib/curveball.js'

export const RedisStore = cjs.RedisStore
export default cjs.RedisStore

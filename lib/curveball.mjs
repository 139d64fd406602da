import cjs from './curveball.js'

export const RedisStore = cjs.RedisStore
export default cjs.RedisStore
